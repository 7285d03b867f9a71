import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { AuditOutcome } from '../core/audit/audit-event.js';
import type { AuditChainStatus, AuditQuery } from '../core/audit/audit-search.js';
import type { ConsoleCore } from './console-core.js';
import type { ConsoleCtx, ConsoleEnv } from './console-env.js';
import { badge, type Html, notAvailable, page, when } from './layout.js';

const PAGE_SIZE = 50;
/** The chain is verified at most this often (it reads the whole log). */
const VERIFY_EVERY_MS = 30_000;
const OUTCOMES: readonly AuditOutcome[] = ['success', 'failure', 'denied'];
const OPERATIONS = [
  'key.',
  'key.create',
  'key.rotate',
  'key.disable',
  'key.enable',
  'key.version.disable',
  'key.version.enable',
  'key.rotation',
  'key.destroy',
  'wrap',
  'unwrap',
  'rewrap',
  'token.issue',
  'identity.',
  'apikey.',
  'console.',
  'console.login',
  'console.logout',
] as const;
const TEXT = /^[\x21-\x7e]{1,256}$/;

/** `YYYY-MM-DDTHH:MM` (a datetime-local field, read as UTC) or a full ISO time; undefined otherwise. */
function parseTime(v: string | undefined): Date | undefined {
  if (v === undefined || v === '') return undefined;
  const d = new Date(/Z|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** The search form's fields, checked (an invalid field is dropped and named). */
export function readAuditQuery(q: (name: string) => string | undefined): {
  query: AuditQuery;
  invalid: string[];
} {
  const invalid: string[] = [];
  const text = (name: string) => {
    const v = q(name)?.trim();
    if (v === undefined || v === '') return undefined;
    if (TEXT.test(v)) return v;
    invalid.push(name);
    return undefined;
  };
  const time = (name: string) => {
    const v = q(name);
    const d = parseTime(v);
    if (v !== undefined && v !== '' && d === undefined) invalid.push(name);
    return d;
  };
  const outcome = q('outcome');
  const pageNo = Number(q('page') ?? '0');
  return {
    query: {
      from: time('from'),
      to: time('to'),
      identity: text('identity'),
      keyId: text('key'),
      operation: text('operation'),
      outcome: OUTCOMES.find((o) => o === outcome),
      page: Number.isSafeInteger(pageNo) && pageNo >= 0 && pageNo < 10_000 ? pageNo : 0,
      pageSize: PAGE_SIZE,
    },
    invalid,
  };
}

function chainSection(s: AuditChainStatus | undefined, error: string | undefined): Html {
  if (error !== undefined) return html`<p>${badge('not verified', 'bad')} ${error}</p>`;
  if (s === undefined) return notAvailable('The chain is not verified here.');
  return html`<p>${s.ok ? badge('chain verified', 'ok') : badge('chain broken', 'bad')}
${s.records} records up to seq ${s.lastSeq}, checked ${when(s.checkedAt)}.</p>
${s.problem === undefined ? '' : html`<p class="bad">${s.problem}</p>`}`;
}

function timeValue(d: Date | undefined): string {
  return d === undefined ? '' : d.toISOString().slice(0, 16);
}

/** GET /audit: search form, results, the chain's verification status. */
export function registerAuditPages(app: Hono<ConsoleEnv>, core: ConsoleCore): void {
  let verified: { at: number; status?: AuditChainStatus; error?: string } | undefined;
  const chain = async (): Promise<{ status?: AuditChainStatus; error?: string }> => {
    const reader = core.deps.auditReader;
    if (reader === undefined) return {};
    const now = core.deps.clock.now().getTime();
    if (verified !== undefined && now - verified.at < VERIFY_EVERY_MS) return verified;
    try {
      verified = { at: now, status: await reader.verify() };
    } catch (err) {
      core.deps.logger.warn({ err }, 'console: audit verify failed');
      verified = { at: now, error: 'the log could not be read' };
    }
    return verified;
  };

  app.get('/audit', async (c: ConsoleCtx) => {
    const session = c.get('session');
    const reader = core.deps.auditReader;
    if (reader === undefined) {
      return c.html(
        page(
          { title: 'Audit', current: '/audit', session },
          html`<h1>Audit log</h1>${notAvailable('This gateway writes its audit records to its log only (no audit: section): there is no log to search.')}`,
        ),
      );
    }
    const { query, invalid } = readAuditQuery((n) => c.req.query(n));
    const searched = c.req.query('search') !== undefined;
    const [result, ch] = await Promise.all([searched ? reader.search(query) : undefined, chain()]);
    const link = (p: number) => {
      const u = new URLSearchParams(c.req.query());
      u.set('page', String(p));
      return `/audit?${u.toString()}`;
    };
    return c.html(
      page(
        { title: 'Audit', current: '/audit', session },
        html`<h1>Audit log</h1>
<h2>Chain</h2>
${chainSection(ch.status, ch.error)}
<form method="get" action="/audit"><fieldset><legend>Search (newest first)</legend>
<input type="hidden" name="search" value="1">
<div class="field"><label for="a-from">From (UTC)</label><input id="a-from" name="from" type="datetime-local" value="${timeValue(query.from)}"></div>
<div class="field"><label for="a-to">To (UTC)</label><input id="a-to" name="to" type="datetime-local" value="${timeValue(query.to)}"></div>
<div class="field"><label for="a-identity">Identity</label><input id="a-identity" name="identity" value="${query.identity ?? ''}"></div>
<div class="field"><label for="a-key">Key id</label><input id="a-key" name="key" value="${query.keyId ?? ''}"></div>
<div class="field"><label for="a-op">Operation</label><select id="a-op" name="operation"><option value="">any</option>${OPERATIONS.map(
          (o) =>
            html`<option value="${o}"${query.operation === o ? html` selected` : ''}>${o.endsWith('.') ? `${o}*` : o}</option>`,
        )}</select></div>
<div class="field"><label for="a-outcome">Outcome</label><select id="a-outcome" name="outcome"><option value="">any</option>${OUTCOMES.map(
          (o) => html`<option${query.outcome === o ? html` selected` : ''}>${o}</option>`,
        )}</select></div>
<button class="primary" type="submit">Search</button></fieldset></form>
${invalid.length === 0 ? '' : html`<p class="flash bad" role="alert">Ignored invalid fields: ${invalid.join(', ')}.</p>`}
${
  result === undefined
    ? ''
    : html`<table><caption>Audit records, page ${query.page + 1}${result.hits.length === 0 ? ': none match' : ''}</caption>
<thead><tr><th scope="col" class="num">Seq</th><th scope="col">Time</th><th scope="col">Identity</th><th scope="col">Operation</th><th scope="col">Outcome</th><th scope="col">Instance / key / version</th><th scope="col">Code</th></tr></thead>
<tbody>${result.hits.map(
        ({ seq, event: e }) => html`<tr><td class="num">${seq}</td><td>${when(e.time)}</td>
<td>${e.subject ?? '—'}${e.certIdentity === undefined ? '' : html`<br><span class="muted mono">${e.certIdentity}</span>`}</td>
<td><code>${e.operation}</code>${e.count === undefined ? '' : html` ×${e.count}`}</td>
<td>${badge(e.outcome, e.outcome === 'success' ? 'ok' : e.outcome === 'denied' ? 'bad' : 'warn')}</td>
<td class="mono">${e.instance ?? ''}${e.keyId === undefined ? '' : ` / ${e.keyId}`}${e.keyVersion === undefined ? '' : ` / ${e.keyVersion}`}${e.target === undefined ? '' : ` (${e.target})`}</td>
<td>${e.errorCode ?? ''}</td></tr>`,
      )}</tbody></table>
<nav class="pager" aria-label="Result pages">${query.page > 0 ? html`<a href="${link(query.page - 1)}">← Newer</a>` : ''}
${result.more ? html`<a href="${link(query.page + 1)}">Older →</a>` : ''}
${result.scanLimit === undefined ? '' : html`<span class="muted">Only the newest ${result.scanLimit} records were searched.</span>`}</nav>`
}`,
      ),
    );
  });
}
