// Line diff of two texts (longest common subsequence), as rows of a side-by-side view.

export interface DiffRow {
  kind: "same" | "changed" | "removed" | "added";
  left: string | null;
  right: string | null;
  leftNo: number | null;
  rightNo: number | null;
}

export function diffLines(leftText: string, rightText: string): DiffRow[] {
  const a = leftText.split("\n");
  const b = rightText.split("\n");
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the LCS of a[i:] and b[j:]
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const rows: DiffRow[] = [];
  let removed: number[] = [];
  let added: number[] = [];
  const flush = () => {
    // pair removals with additions as changed lines; the rest stay one-sided
    const pairs = Math.min(removed.length, added.length);
    for (let k = 0; k < pairs; k++) {
      rows.push({ kind: "changed", left: a[removed[k]], right: b[added[k]], leftNo: removed[k] + 1, rightNo: added[k] + 1 });
    }
    for (const i of removed.slice(pairs)) rows.push({ kind: "removed", left: a[i], right: null, leftNo: i + 1, rightNo: null });
    for (const j of added.slice(pairs)) rows.push({ kind: "added", left: null, right: b[j], leftNo: null, rightNo: j + 1 });
    removed = [];
    added = [];
  };
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      flush();
      rows.push({ kind: "same", left: a[i], right: b[j], leftNo: i + 1, rightNo: j + 1 });
      i++;
      j++;
    } else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      added.push(j++);
    } else {
      removed.push(i++);
    }
  }
  flush();
  return rows;
}
