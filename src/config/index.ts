// The configuration module's public surface.

export type * from './types.js';
export { ConfigError, loadConfigFile, parseConfigFile, validateConfig, type ValidationResult } from './load.js';
export { unbuiltFeatures } from './features.js';
export { parseDuration } from './duration.js';
export { configSchema } from './schema.js';
