// The one digest the project uses: lowercase hex sha256 (lockfile pins, cache keys, assets).
import { createHash } from 'node:crypto';

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
