import { html } from 'hono/html';
import type { Session } from './sessions.js';

/** A rendered fragment (hono's escaped HTML: every interpolated string is escaped). */
export type Html = ReturnType<typeof html>;

/** The console's pages, in the navigation's order. */
export const PAGES = [
  { path: '/keys', label: 'Keys' },
  { path: '/clusters', label: 'Clusters & nodes' },
  { path: '/rotation', label: 'Rotation' },
  { path: '/audit', label: 'Audit' },
  { path: '/status', label: 'Status' },
] as const;

export interface PageOptions {
  readonly title: string;
  /** The navigation entry to mark current. */
  readonly current?: string | undefined;
  readonly session?: Session | undefined;
  /** `<meta http-equiv="refresh">` every this many seconds (the rotation page only). */
  readonly refreshSeconds?: number | undefined;
}

/** The hidden CSRF field every form carries. */
export function csrfField(session: Session): Html {
  return html`<input type="hidden" name="csrf" value="${session.csrf}">`;
}

/** A whole page: head, skip link, navigation, the result of the last action, then `body`. */
export function page(o: PageOptions, body: Html): Html {
  const s = o.session;
  const flash = s?.flash;
  if (s !== undefined) s.flash = undefined;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${o.refreshSeconds === undefined ? '' : html`<meta http-equiv="refresh" content="${o.refreshSeconds}">`}
<title>${o.title} · keygate console</title>
<link rel="stylesheet" href="/console.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">keygate console</span>
  ${
    s === undefined
      ? ''
      : html`<nav aria-label="Console pages"><ul>${PAGES.map(
          (p) =>
            html`<li><a href="${p.path}"${p.path === o.current ? html` aria-current="page"` : ''}>${p.label}</a></li>`,
        )}</ul></nav>
  <div class="who"><span>Signed in as <strong>${s.identity.name}</strong> (${s.via === 'apikey' ? 'API key' : 'certificate'})</span>
  <form class="inline" method="post" action="/logout">${csrfField(s)}<button type="submit">Log out</button></form></div>`
  }
</header>
<main id="main">
${flash === undefined ? '' : html`<p class="flash ${flash.ok ? 'ok' : 'bad'}" role="status">${flash.text}</p>`}
${body}
</main>
</body>
</html>`;
}

/** A badge for a good/bad/warning state. */
export function badge(text: string, tone: 'ok' | 'warn' | 'bad' | 'muted'): Html {
  return html`<span class="badge ${tone}">${text}</span>`;
}

/** An ISO time as `YYYY-MM-DD HH:MM:SS UTC`, in a <time> element. */
export function when(iso: string | undefined): Html {
  if (iso === undefined) return html`<span class="muted">never</span>`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return html`${iso}`;
  return html`<time datetime="${d.toISOString()}">${d.toISOString().replace('T', ' ').slice(0, 19)} UTC</time>`;
}

/** A page that says the session is missing, a form was refused, or a capability is absent. */
export function messagePage(title: string, text: string, session?: Session, back = '/login'): Html {
  return page(
    { title, session },
    html`<h1>${title}</h1><p>${text}</p><p><a href="${back}">${back === '/login' ? 'Log in' : 'Back'}</a></p>`,
  );
}

/** "not available" for a capability this gateway does not have (yet). */
export function notAvailable(what: string): Html {
  return html`<p class="muted"><span class="badge muted">not available</span> ${what}</p>`;
}
