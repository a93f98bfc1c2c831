// Grid layout: 24 columns, rows of fixed height; a moved or resized panel pushes the panels
// it now overlaps down, so a drop never hides a panel under another.
import { GRID_COLUMNS, type GridPos } from "./spec";

export function overlaps(a: GridPos, b: GridPos): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

export function clampPos(p: GridPos): GridPos {
  const w = Math.max(2, Math.min(GRID_COLUMNS, Math.round(p.w)));
  const h = Math.max(2, Math.min(100, Math.round(p.h)));
  return { x: Math.max(0, Math.min(GRID_COLUMNS - w, Math.round(p.x))), y: Math.max(0, Math.round(p.y)), w, h };
}

export function placeAndPush<T extends { id: number; gridPos: GridPos }>(items: readonly T[], id: number, pos: GridPos): T[] {
  const out = items.map((it) => (it.id === id ? { ...it, gridPos: clampPos(pos) } : { ...it }));
  const fixed: T[] = out.filter((it) => it.id === id);
  // Others in reading order; each drops below whatever it overlaps among those already placed.
  const rest = out.filter((it) => it.id !== id).sort((a, b) => a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x);
  for (const it of rest) {
    let moved = true;
    while (moved) {
      moved = false;
      for (const f of fixed) {
        if (overlaps(it.gridPos, f.gridPos)) {
          it.gridPos = { ...it.gridPos, y: f.gridPos.y + f.gridPos.h };
          moved = true;
        }
      }
    }
    fixed.push(it);
  }
  return out;
}
