// Series as the app keeps them, and the merge of Watch deltas into them.

export interface Series {
  labels: Record<string, string>;
  timestamps: number[]; // ms, ascending
  values: number[];
  legend?: string; // the target's series name template
}

function key(labels: Record<string, string>): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

// A bucket sent again replaces the earlier value at its timestamp; new buckets are inserted
// in order; points older than `since` are dropped so a live page does not grow without end.
export function mergeSeries(current: readonly Series[], delta: readonly Series[], since: number): Series[] {
  const byKey = new Map<string, Series>();
  for (const s of current) byKey.set(key(s.labels), { labels: s.labels, timestamps: [...s.timestamps], values: [...s.values] });
  for (const d of delta) {
    const k = key(d.labels);
    const s = byKey.get(k) ?? { labels: d.labels, timestamps: [], values: [] };
    const points = new Map<number, number>();
    s.timestamps.forEach((t, i) => points.set(t, s.values[i] as number));
    d.timestamps.forEach((t, i) => points.set(t, d.values[i] as number));
    const ts = [...points.keys()].filter((t) => t >= since).sort((a, b) => a - b);
    byKey.set(k, { labels: s.labels, timestamps: ts, values: ts.map((t) => points.get(t) as number) });
  }
  for (const [k, s] of byKey) {
    if (s.timestamps.length > 0 && (s.timestamps[0] as number) < since) {
      const i = s.timestamps.findIndex((t) => t >= since);
      byKey.set(k, { labels: s.labels, timestamps: i < 0 ? [] : s.timestamps.slice(i), values: i < 0 ? [] : s.values.slice(i) });
    }
  }
  return [...byKey.values()];
}

// uPlot's aligned data: one x axis (seconds) and one y array per series (null for gaps).
export function align(series: readonly Series[]): [number[], ...(number | null)[][]] {
  const xs = new Set<number>();
  for (const s of series) for (const t of s.timestamps) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const y: (number | null)[] = new Array<number | null>(x.length).fill(null);
    s.timestamps.forEach((t, i) => {
      y[index.get(t) as number] = s.values[i] as number;
    });
    return y;
  });
  return [x.map((t) => t / 1000), ...ys];
}

// Stacked areas: each series drawn as the running sum of those below it.
export function stack(ys: readonly (number | null)[][]): (number | null)[][] {
  const out: (number | null)[][] = [];
  let acc: number[] = [];
  for (const y of ys) {
    if (acc.length === 0) acc = new Array<number>(y.length).fill(0);
    acc = acc.map((a, i) => a + (y[i] ?? 0));
    out.push(acc.map((a, i) => (y[i] === null ? null : a)));
  }
  return out;
}
