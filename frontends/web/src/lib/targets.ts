// Editing a panel's targets (queries A, B, C…): pure list operations the panel editor uses.
// refIds stay unique within the panel (the server's schema refuses a repeated one).
import type { Target } from "./spec";

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

// A, B, …, Z, then AA, AB, … (spreadsheet columns): the first one no target uses.
export function nextRefId(targets: readonly Target[]): string {
  const used = new Set(targets.map((t) => t.refId ?? ""));
  for (let n = 0; ; n++) {
    let id = "";
    for (let k = n; ; k = Math.floor(k / 26) - 1) {
      id = (LETTERS[k % 26] as string) + id;
      if (k < 26) break;
    }
    if (!used.has(id)) return id;
  }
}

// Targets without a refId (hand-written specs may omit it) get one, so each can be keyed and
// edited on its own; targets that have one keep it.
export function withRefIds(targets: readonly Target[]): Target[] {
  const out: Target[] = [];
  const seen = new Set<string>();
  for (const t of targets) {
    const ref = t.refId !== undefined && t.refId !== "" && !seen.has(t.refId) ? t.refId : nextRefId([...targets, ...out]);
    seen.add(ref);
    out.push(ref === t.refId ? t : { ...t, refId: ref });
  }
  return out;
}

export function addTarget(targets: readonly Target[]): Target[] {
  const last = targets[targets.length - 1];
  // A new query starts on the same metric: comparing series of one metric is the usual case.
  return [...targets, { refId: nextRefId(targets), metric: last?.metric ?? "" }];
}

export function duplicateTarget(targets: readonly Target[], i: number): Target[] {
  const t = targets[i];
  if (t === undefined) return [...targets];
  const copy: Target = { ...structuredClone(t), refId: nextRefId(targets) };
  return [...targets.slice(0, i + 1), copy, ...targets.slice(i + 1)];
}

export function removeTarget(targets: readonly Target[], i: number): Target[] {
  return targets.filter((_, k) => k !== i);
}

// Move target i by delta places (−1 up, +1 down); out of range is a no-op.
export function moveTarget(targets: readonly Target[], i: number, delta: number): Target[] {
  const j = i + delta;
  if (i < 0 || i >= targets.length || j < 0 || j >= targets.length) return [...targets];
  const out = [...targets];
  [out[i], out[j]] = [out[j] as Target, out[i] as Target];
  return out;
}

export function updateTarget(targets: readonly Target[], i: number, patch: Partial<Target>): Target[] {
  return targets.map((t, k) => (k === i ? { ...t, ...patch } : t));
}
