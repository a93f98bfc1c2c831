// gRPC-web clients to the same origin, with the API key from the browser session.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DashboardService } from "./gen/argus/dashboards/v1/dashboards_pb";
import { AlertService } from "./gen/argus/alerts/v1/service_pb";
import type { QueryParams } from "./lib/query";
import type { Series } from "./lib/live";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { MatchOp, QueryService, QueryRequestSchema, type QueryRequest, type ResultSeries } from "./gen/argus/query/v1/query_pb";

const KEY = "argus.apiKey";

export function getKey(): string {
  return sessionStorage.getItem(KEY) ?? "";
}
export function setKey(key: string): void {
  if (key === "") sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, key);
}

const auth: Interceptor = (next) => (req) => {
  const key = getKey();
  if (key !== "") req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [auth],
  defaultTimeoutMs: 30_000,
});

export const dashboards = createClient(DashboardService, transport);
export const queries = createClient(QueryService, transport);
export const alerts = createClient(AlertService, transport);

export function errorMessage(e: unknown): string {
  if (e instanceof ConnectError) return e.rawMessage || Code[e.code];
  return e instanceof Error ? e.message : String(e);
}
export function isCode(e: unknown, code: Code): boolean {
  return e instanceof ConnectError && e.code === code;
}
export { Code };

const OPS: Record<string, MatchOp> = {
  "=": MatchOp.EQUAL,
  "!=": MatchOp.NOT_EQUAL,
  "=~": MatchOp.REGEX,
  "!~": MatchOp.NOT_REGEX,
};

export function toRequest(q: QueryParams, start: number, end: number): MessageInitShape<typeof QueryRequestSchema> {
  return {
    metric: q.metric,
    agg: q.agg,
    period: q.period,
    startMs: BigInt(Math.floor(start)),
    endMs: BigInt(Math.floor(end)),
    matchers: q.matchers.map((m) => ({ name: m.name, op: OPS[m.op], value: m.value })),
    groupBy: q.groupBy,
    region: q.region,
  };
}

export function fromResult(series: readonly ResultSeries[]): Series[] {
  return series.map((s) => ({
    labels: { ...s.labels },
    // int64 arrives as bigint; ms since the epoch fit a double exactly.
    timestamps: s.timestampsMs.map(Number),
    values: [...s.values],
  }));
}

export type { QueryRequest };
