// What the compiled configuration schema (validate-schema.generated.ts) calls at run time: the
// two formats the schema declares, and ajv's string length helper (minLength counts characters,
// not UTF-16 code units). compile-schema.ts compiles against these same functions. semver's one
// module for `valid`, not its index of 40.
import ucs2lengthModule from 'ajv/dist/runtime/ucs2length.js';
import validSemver from 'semver/functions/valid.js';

import { isDuration } from './duration.js';

export const ucs2length = ucs2lengthModule.default;

export const formats = {
  duration: isDuration,
  semver: (text: string): boolean => validSemver(text) !== null,
};
