/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the top frames by self time, and self time
 * by package or source folder. Usage: node bench/dist/tools/prof-top.js FILE.cpuprofile [N]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export function summariseProfile(file: string, top = 25): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  prof.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const frames = new Map<string, number>();
  const groups = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    const where = f.url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, 'nm:');
    const key = `${f.functionName || '(anonymous)'}  ${where.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
    let group: string;
    if (f.url === '') group = f.functionName.startsWith('(') ? f.functionName : '(native)';
    else if (where.startsWith('nm:'))
      group = where
        .split('/')
        .slice(0, where.startsWith('nm:@') ? 2 : 1)
        .join('/');
    else if (where.startsWith('node:')) group = where.split('/')[0] ?? where;
    else group = where.split('/').slice(-3, -1).join('/');
    groups.set(group, (groups.get(group) ?? 0) + us);
  }
  // Inclusive time per frame (each sample counted once per distinct frame on its stack).
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, number>();
  const keyOf = (n: Node) => {
    const f = n.callFrame;
    const where = f.url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, 'nm:');
    return `${f.functionName || '(anonymous)'}  ${where.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  };
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (!n) break;
      const k = keyOf(n);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const out: string[] = [`total ${(total / 1e6).toFixed(2)} s sampled`, '', 'top frames (self):'];
  for (const [k, us] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(us)}  ${k}`);
  out.push('', 'top project frames (inclusive):');
  const own = [...incl].filter(
    ([k]) => !k.includes('nm:') && !k.includes('node:') && /\.js:/.test(k) && !/(internal|cjs|esm)\//.test(k),
  );
  for (const [k, us] of own.sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${pct(us)}  ${k}`);
  out.push('', 'by package / folder (self):');
  for (const [k, us] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, 20)) out.push(`  ${pct(us)}  ${k}`);
  return out.join('\n');
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: prof-top FILE.cpuprofile [N]');
    process.exit(2);
  }
  console.log(summariseProfile(file, Number(process.argv[3] ?? 25)));
}
