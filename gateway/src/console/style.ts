/** The console's one style sheet, served at /console.css (CSP `style-src 'self'`: no inline styles). */
export const CONSOLE_CSS = `
:root { --fg: #1b1f24; --muted: #57606a; --bg: #ffffff; --panel: #f6f8fa; --line: #d0d7de;
  --accent: #0a58ca; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --focus: #ffbf47; }
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--bg); padding: .5rem; }
.skip:focus { left: .5rem; }
header.top { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem; background: #24292f; color: #fff; flex-wrap: wrap; }
header.top .brand { font-weight: 700; font-size: 1.1rem; }
header.top nav ul { display: flex; gap: .25rem; list-style: none; margin: 0; padding: 0; flex-wrap: wrap; }
header.top nav a { color: #fff; text-decoration: none; padding: .35rem .7rem; border-radius: 6px; display: inline-block; }
header.top nav a[aria-current="page"], header.top nav a:hover { background: #444c56; }
header.top .who { margin-left: auto; display: flex; align-items: center; gap: .6rem; font-size: .9rem; }
header.top .who button { background: transparent; color: #fff; border: 1px solid #8c959f; }
main { max-width: 1300px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.5rem; margin: .4rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; font-size: .92rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; color: var(--muted); }
th, td { border-bottom: 1px solid var(--line); padding: .4rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .88em; word-break: break-all; }
form.inline { display: inline; }
fieldset { border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; margin: .6rem 0 1rem; }
legend { font-weight: 600; padding: 0 .3rem; }
label { display: inline-block; margin: .2rem .6rem .2rem 0; font-weight: 500; }
input, select, button { font: inherit; padding: .35rem .55rem; border: 1px solid #8c959f; border-radius: 6px; background: #fff; color: var(--fg); }
button { cursor: pointer; background: var(--panel); }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button.danger { background: var(--bad); color: #fff; border-color: var(--bad); }
.field { display: inline-flex; flex-direction: column; margin: 0 .8rem .6rem 0; }
.field label { margin: 0 0 .2rem; font-size: .85rem; color: var(--muted); }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; border: 1px solid currentColor; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); } .muted { color: var(--muted); }
.flash { padding: .6rem .9rem; border-radius: 6px; margin: 0 0 1rem; border: 1px solid; }
.flash.ok { background: #dafbe1; } .flash.bad { background: #ffebe9; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; background: var(--panel); }
.card h2 { margin-top: 0; }
.login { max-width: 460px; margin: 3rem auto; }
.login input { width: 100%; }
.actions { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
svg.chart { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
svg.chart text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: .8rem; list-style: none; padding: 0; margin: .2rem 0 1rem; font-size: .85rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: middle; }
.s0 { background: #0a58ca; fill: #0a58ca; } .s1 { background: #1a7f37; fill: #1a7f37; } .s2 { background: #9a6700; fill: #9a6700; }
.s3 { background: #8250df; fill: #8250df; } .s4 { background: #cf222e; fill: #cf222e; } .s5 { background: #57606a; fill: #57606a; }
.l0 { stroke: #0a58ca; } .l1 { stroke: #1a7f37; } .l2 { stroke: #9a6700; } .l3 { stroke: #8250df; } .l4 { stroke: #cf222e; } .l5 { stroke: #57606a; }
polyline { fill: none; }
.pager { display: flex; gap: 1rem; align-items: center; }
`;
