// prom-client's registry and metric classes, each from its own module rather than through the
// package's index. The index also loads the default metrics (collectDefaultMetrics, which the
// registry does not use: zot exports no process metrics), and one of them loads
// @opentelemetry/api for its exemplars: requiring the index took 54 ms against 14 ms for these
// five modules (node 20, 2 cores), some 40 ms of every start with metrics on.
// prom-client declares no "exports" map, so its lib/ modules are reachable by path. Each name is
// both the class and its instance type, as the index's are.
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const requireLib = createRequire(import.meta.url);

export const Registry = requireLib('prom-client/lib/registry') as typeof PromClient.Registry;
export type Registry = PromClient.Registry;
export const Counter = requireLib('prom-client/lib/counter') as typeof PromClient.Counter;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export const Gauge = requireLib('prom-client/lib/gauge') as typeof PromClient.Gauge;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export const Histogram = requireLib('prom-client/lib/histogram') as typeof PromClient.Histogram;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;
export const Summary = requireLib('prom-client/lib/summary') as typeof PromClient.Summary;
export type Summary<T extends string = string> = PromClient.Summary<T>;
