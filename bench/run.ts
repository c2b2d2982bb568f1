// Runs every benchmark in bench/ one after another (each prints its own ratios).
import { readdirSync } from 'node:fs';
import path from 'node:path';

for (const f of readdirSync(import.meta.dirname).filter((f) => f.endsWith('.bench.ts')).sort()) {
  console.log(`== ${f}`);
  await import(path.join(import.meta.dirname, f));
}
