import { describe, expect, it } from "vitest";
import { addTarget, duplicateTarget, moveTarget, nextRefId, removeTarget, updateTarget, withRefIds } from "./targets";
import type { Target } from "./spec";

const t = (refId: string, metric = "m"): Target => ({ refId, metric });

describe("targets", () => {
  it("assigns the first free refId, past Z into AA", () => {
    expect(nextRefId([])).toBe("A");
    expect(nextRefId([t("A"), t("C")])).toBe("B");
    const all = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"].map((c) => t(c));
    expect(nextRefId(all)).toBe("AA");
    expect(nextRefId([...all, t("AA")])).toBe("AB");
  });

  it("adds, duplicates and removes without a refId collision", () => {
    let ts = addTarget([t("A", "cpu")]);
    expect(ts.map((x) => x.refId)).toEqual(["A", "B"]);
    expect(ts[1]?.metric).toBe("cpu");
    ts = removeTarget(ts, 0); // B left: the next one is A again, not a second B
    ts = addTarget(ts);
    expect(ts.map((x) => x.refId)).toEqual(["B", "A"]);
    const withWhere = updateTarget(ts, 0, { where: ["host=a"], hide: true });
    const dup = duplicateTarget(withWhere, 0);
    expect(dup.map((x) => x.refId)).toEqual(["B", "C", "A"]);
    expect(dup[1]).toMatchObject({ metric: "cpu", where: ["host=a"], hide: true });
    // The copy is deep: editing it leaves the original alone.
    (dup[1]?.where as string[]).push("x=y");
    expect(withWhere[0]?.where).toEqual(["host=a"]);
    expect(new Set(dup.map((x) => x.refId)).size).toBe(dup.length);
  });

  it("reorders within bounds", () => {
    const ts = [t("A"), t("B"), t("C")];
    expect(moveTarget(ts, 2, -1).map((x) => x.refId)).toEqual(["A", "C", "B"]);
    expect(moveTarget(ts, 0, 1).map((x) => x.refId)).toEqual(["B", "A", "C"]);
    expect(moveTarget(ts, 0, -1).map((x) => x.refId)).toEqual(["A", "B", "C"]);
    expect(moveTarget(ts, 2, 1).map((x) => x.refId)).toEqual(["A", "B", "C"]);
  });

  it("gives missing or repeated refIds fresh ones", () => {
    const fixed = withRefIds([{ metric: "a" }, t("A"), t("A"), t("B")]);
    expect(fixed.map((x) => x.refId)).toEqual(["C", "A", "D", "B"]);
  });
});
