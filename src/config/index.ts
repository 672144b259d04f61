// The configuration module's public surface.

export type * from './types.js';
export { ConfigError, loadConfigFile, parseConfigFile, validateConfig, type ValidationResult } from './load.js';
export { FEATURES, unbuiltFeatures, type Feature, type FeatureStatus } from './features.js';
export { storeSettings, type StoreKind, type StoreSettings } from './store-settings.js';
export { parseDuration } from './duration.js';
export { configSchema } from './schema.js';
