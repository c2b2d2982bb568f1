// Schemas are Zod Mini's (`import * as z from 'zod/mini'` in each module that declares them):
// the same checks as classic Zod from a fraction of its code, which would otherwise be most of
// what a CLI start loads and runs. Zod Mini loads no messages of its own; importing this module
// gives it classic Zod's English ones.
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());
