import { type Document, isScalar, type Scalar, visit } from 'yaml';

/**
 * Makes a parsed YAML document keep the text of some scalars as written, before it becomes
 * JavaScript: every mapping key (a key is a name, so `0123:` stays "0123", not 123), and the
 * values at `paths` (dotted key paths such as `KP_CONFIG.CRK_ID`), so an id written `0123`, `1e5`
 * or `12.50` is that text rather than a number YAML normalised. A null (`~`, `null`, nothing)
 * stays null; quoted and block scalars are text already.
 */
export function keepAsWritten(doc: Document, paths: readonly string[] = []): void {
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key)) plainAsText(pair.key);
    },
  });
  for (const path of paths) {
    const node = doc.getIn(path.split('.'), true);
    if (isScalar(node)) plainAsText(node);
  }
}

/** A plain scalar YAML resolved to a number or a boolean becomes its source text. */
function plainAsText(node: Scalar): void {
  if (node.type !== 'PLAIN' || node.value === null || typeof node.value === 'string') return;
  if (typeof node.source === 'string' && node.source !== '') node.value = node.source;
}
