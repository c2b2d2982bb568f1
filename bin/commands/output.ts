// How every command prints JSON: whole, indented, one trailing newline.
export const printJson = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
