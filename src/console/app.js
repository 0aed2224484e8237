// ivrflow console: a small single-page app over the public /v1 API.
//
// Rules this file keeps: text from the server only ever becomes a text node or an
// attribute value set through the DOM (never innerHTML); every request goes to this origin
// with the session cookie, and requests that change something carry X-Ivrflow-Console: 1
// (the server refuses them otherwise); a 401 sends the browser back to the sign-in page.
'use strict';

(function () {
  const CONSOLE_HEADER = 'X-Ivrflow-Console';
  let timer = null; // the current page's refresh timer

  // ---- DOM helpers -------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));
  const main = () => document.getElementById('app');
  function show(...nodes) {
    const m = main();
    m.replaceChildren(...nodes.flat().filter(Boolean));
  }
  function setError(msg) {
    const e = document.getElementById('error');
    e.textContent = msg || '';
    e.hidden = !msg;
  }
  function table(id, headers, rows, empty) {
    const body = rows.length
      ? rows
      : [el('tr', { class: 'empty' }, el('td', { colspan: headers.length, text: empty }))];
    return el('table', { id },
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))),
      el('tbody', {}, body));
  }
  function badge(label, kind) {
    return el('span', { class: 'badge' + (kind ? ' ' + kind : ''), text: label });
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '—';
    const s = Math.floor(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  }
  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.toLocaleString(undefined, { hour12: false });
  }
  function fmtMs(ms) {
    return ms === null || ms === undefined ? '—' : (ms / 1000).toFixed(2) + ' s';
  }
  const stateKind = (s) =>
    ({ completed: 'ok', answered: 'ok', started: 'warn', queued: '', failed: 'bad', cancelled: '' }[s] || '');

  // ---- API ---------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers[CONSOLE_HEADER] = '1';
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Error(`${method} ${path}: the server does not answer (${e.message})`);
    }
    if (resp.status === 401) {
      window.location.assign('/console/login');
      throw new Error('signed out');
    }
    let json = null;
    try {
      json = await resp.json();
    } catch (e) {
      json = null;
    }
    return { status: resp.status, json };
  }
  async function apiOk(method, path, body) {
    const r = await api(method, path, body);
    if (r.status >= 400) {
      const why = r.json && r.json.error ? r.json.error : `HTTP ${r.status}`;
      throw new Error(`${method} ${path}: ${why}`);
    }
    return r.json;
  }

  // ---- routing -----------------------------------------------------------------------
  function parseHash() {
    const h = window.location.hash.replace(/^#\/?/, '');
    const [path, query] = h.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(query || '') };
  }
  async function route() {
    if (timer) {
      clearInterval(timer);
      timer = null;
    }
    setError('');
    const { parts, params } = parseHash();
    const page = parts[0] || 'live';
    for (const a of document.querySelectorAll('nav a[data-nav]')) {
      a.classList.toggle('active', a.dataset.nav === page);
    }
    try {
      if (page === 'live') await livePage();
      else if (page === 'calls' && parts[1]) await callPage(parts[1]);
      else if (page === 'calls') await callsPage(params);
      else if (page === 'scenarios' && parts[1]) await scenarioPage(parts[1], params);
      else if (page === 'scenarios') await scenariosPage();
      else if (page === 'campaigns') await campaignsPage();
      else if (page === 'dead') await deadPage(params);
      else show(el('h1', { text: 'Not found' }), el('p', { text: `No page ${page}.` }));
    } catch (e) {
      if (e.message !== 'signed out') setError(e.message);
    }
  }
  function refreshEvery(ms, fn) {
    timer = setInterval(() => fn().catch((e) => setError(e.message)), ms);
  }

  // ---- live calls --------------------------------------------------------------------
  async function livePage() {
    const draw = async () => {
      const s = await apiOk('GET', '/v1/status');
      const flags = [];
      if (s.draining) flags.push(badge('draining', 'warn'));
      if (s.overloaded) flags.push(badge('overloaded', 'bad'));
      if (s.store_error) flags.push(badge('store cannot commit: ' + s.store_error, 'bad'));
      if (!flags.length) flags.push(badge('taking calls', 'ok'));
      const calls = s.calls.map((c) =>
        el('tr', { 'data-call-ref': c.call_ref || '' },
          el('td', {}, c.call_ref ? el('a', { href: '#/calls/' + encodeURIComponent(c.call_ref), class: 'mono', text: c.call_ref.slice(0, 8) }) : '—'),
          el('td', {}, el('a', { href: '#/scenarios/' + encodeURIComponent(c.scenario) + (c.call_ref ? '?call=' + encodeURIComponent(c.call_ref) : ''), text: c.scenario })),
          el('td', { text: c.direction }),
          el('td', { class: 'node' }, el('code', { text: c.node })),
          el('td', { class: 't duration', text: fmtDuration(c.duration_ms) }),
          el('td', { class: 't', text: fmtTime(c.answered_at) }),
          el('td', {}, c.bridged ? badge('bridged to an agent') : ''),
          el('td', { class: 'mono muted', text: c.sip_call_id })));
      const trunks = s.trunks.map((t) =>
        el('tr', { 'data-trunk': t.name },
          el('td', { text: t.name }),
          el('td', { class: 'mono', text: t.proxy }),
          el('td', {}, badge(t.registration, t.registration === 'registered' ? 'ok' : t.registration === 'failed' ? 'bad' : '')),
          el('td', { text: text(t.last_status) }),
          el('td', {}, badge(t.keepalive, t.keepalive === 'up' ? 'ok' : t.keepalive === 'down' ? 'bad' : '')),
          el('td', { text: t.active_calls })));
      show(
        el('h1', {}, 'Live calls ', el('span', { class: 'muted', id: 'live-count', text: `(${s.calls.length})` })),
        el('p', {}, flags, ' ', el('span', { class: 'muted', text: `node ${s.node}, reported ${fmtTime(s.reported_at)}` })),
        table('live-calls', ['Call', 'Scenario', 'Direction', 'Graph node', 'Duration', 'Answered', '', 'SIP Call-ID'], calls, 'No call is up.'),
        el('h2', { text: 'Trunks' }),
        table('trunks', ['Trunk', 'Proxy', 'Registration', 'Last status', 'Keep-alive', 'Calls'], trunks, 'No trunk is configured.'));
    };
    await draw();
    refreshEvery(2000, draw);
  }

  // ---- recent calls ------------------------------------------------------------------
  const STATES = ['', 'queued', 'started', 'answered', 'completed', 'failed', 'cancelled'];
  async function callsPage(params) {
    const q = new URLSearchParams();
    for (const k of ['state', 'direction', 'scenario', 'campaign', 'after']) {
      if (params.get(k)) q.set(k, params.get(k));
    }
    q.set('limit', '50');
    const [list, scen] = await Promise.all([
      apiOk('GET', '/v1/calls?' + q.toString()),
      apiOk('GET', '/v1/scenarios'),
    ]);
    const select = (name, options) =>
      el('select', { name, id: 'filter-' + name },
        options.map((o) => el('option', { value: o, selected: params.get(name) === o || (!params.get(name) && o === ''), text: o || 'any' })));
    const campaign = el('input', { name: 'campaign', id: 'filter-campaign', value: params.get('campaign') || '', placeholder: 'any' });
    const form = el('form', { class: 'filters', id: 'call-filters' },
      el('label', {}, 'State', select('state', STATES)),
      el('label', {}, 'Direction', select('direction', ['', 'inbound', 'outbound'])),
      el('label', {}, 'Scenario', select('scenario', [''].concat(scen.scenarios.map((s) => s.name)))),
      el('label', {}, 'Campaign', campaign),
      el('button', { type: 'submit', class: 'primary', text: 'Filter' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(form).entries()) if (v) p.set(k, v);
      window.location.hash = '#/calls' + (p.toString() ? '?' + p.toString() : '');
    });
    const rows = list.calls.map((c) =>
      el('tr', { 'data-call': c.id },
        el('td', {}, el('a', { href: '#/calls/' + encodeURIComponent(c.id), class: 'mono', text: c.id.slice(0, 8) })),
        el('td', { class: 't', text: fmtTime(c.created_at) }),
        el('td', { text: c.direction }),
        el('td', { text: c.scenario }),
        el('td', {}, badge(c.state, stateKind(c.state))),
        el('td', { text: c.outcome || (c.failure ? c.failure.reason + (c.failure.sip_code ? ` (${c.failure.sip_code})` : '') : '—') }),
        el('td', { class: 't', text: fmtDuration(c.duration_ms) }),
        el('td', { text: text(c.campaign) }),
        el('td', { class: 'mono', text: text(c.direction === 'inbound' ? c.from : c.to) })));
    const nav = [];
    if (params.get('after')) {
      const p = new URLSearchParams(params);
      p.delete('after');
      nav.push(el('a', { href: '#/calls' + (p.toString() ? '?' + p : ''), text: '← newest' }), ' ');
    }
    if (list.next_after) {
      const p = new URLSearchParams(params);
      p.set('after', list.next_after);
      nav.push(el('a', { href: '#/calls?' + p.toString(), id: 'older', text: 'older →' }));
    }
    show(el('h1', { text: 'Calls' }), form,
      table('calls', ['Call', 'Created', 'Direction', 'Scenario', 'State', 'Outcome', 'Duration', 'Campaign', 'Number'], rows, 'No call matches.'),
      el('p', {}, nav));
  }

  // ---- one call ----------------------------------------------------------------------
  function describeInput(t) {
    if (t.type === 'dtmf') return ['key', `pressed ${t.digit}` + (t.source ? ` (${t.source})` : '')];
    if (t.type === 'amd') return ['machine detection', `${t.verdict}: ${t.reason}`];
    const rest = Object.entries(t).filter(([k]) => k !== 'type' && k !== 'at_ms').map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`);
    return [t.type.replace(/_/g, ' '), rest.join(', ')];
  }
  async function callPage(id) {
    const c = await apiOk('GET', '/v1/calls/' + encodeURIComponent(id));
    const tr = c.trace || {};
    const facts = [
      ['Call', c.id], ['Scenario', c.scenario], ['Direction', c.direction], ['State', c.state],
      ['Outcome', c.outcome], ['Failure', c.failure ? c.failure.reason + (c.failure.sip_code ? ` (SIP ${c.failure.sip_code})` : '') : null],
      ['From', c.from], ['To', c.to], ['Campaign', c.campaign], ['Dial attempts', c.dial_attempts],
      ['Created', fmtTime(c.created_at)], ['Answered', fmtTime(c.answered_at)], ['Ended', fmtTime(c.ended_at)],
      ['Duration', c.result && c.result.duration_ms !== undefined ? fmtDuration(c.result.duration_ms) : '—'],
      ['SIP Call-ID', c.sip_call_id], ['Node', c.node], ['Hung up by', c.result ? c.result.hangup_by : null],
    ];
    const dl = el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: text(v) })]));

    // The timeline: prompts (with how much was heard), keys, other trace entries.
    const items = [];
    for (const p of tr.prompts || []) {
      const pct = p.duration_ms ? Math.round((100 * p.heard_ms) / p.duration_ms) : 100;
      items.push({ at: p.at_ms, row: el('tr', { class: 'prompt' },
        el('td', { class: 't', text: fmtMs(p.at_ms) }), el('td', { text: '▶ prompt' }),
        el('td', {}, el('code', { text: (p.prompts || []).join(' + ') })),
        el('td', {}, el('span', { class: 'bar', title: `${pct}% heard` }, el('span', { style: null })),
          ' ', `heard ${fmtMs(p.heard_ms)} of ${fmtMs(p.duration_ms)}`, p.completed ? '' : ' (cut)')) });
      const bar = items[items.length - 1].row.querySelector('.bar > span');
      bar.style.width = pct + '%';
    }
    for (const t of (tr.inputs || []).concat(tr.events || [])) {
      const [what, detail] = describeInput(t);
      items.push({ at: t.at_ms, row: el('tr', { class: 'input' },
        el('td', { class: 't', text: fmtMs(t.at_ms) }), el('td', { text: what }), el('td', { colspan: 2, text: detail })) });
    }
    items.sort((a, b) => (a.at || 0) - (b.at || 0));
    const answers = (tr.answers || []).map((a) =>
      el('tr', {}, el('td', {}, el('code', { text: a.node })), el('td', { text: a.input }),
        el('td', { text: a.value }), el('td', { text: text(a.intent) }),
        el('td', { text: a.confidence === undefined || a.confidence === null ? '—' : Number(a.confidence).toFixed(2) })));
    const sip = (tr.sip || []).map((s) =>
      el('tr', {}, el('td', { class: 't', text: fmtTime(s.at) }), el('td', { text: s.what }),
        el('td', { text: text(s.code) }), el('td', { text: text(s.by || s.reason) })));
    const hooks = (tr.webhooks || []).map((w) => {
      const attempts = (w.attempts || []).map((a) => `#${a.attempt} ${a.status_code || a.result} ${a.latency_ms} ms${a.error ? ' — ' + a.error : ''}`);
      const replay = w.status === 'dead'
        ? el('button', { class: 'replay', 'data-event': w.event_id, text: 'Replay', onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await apiOk('POST', '/v1/events/' + encodeURIComponent(w.event_id) + '/replay');
            await route();
          } catch (e) { setError(e.message); }
        } })
        : '';
      return el('tr', {}, el('td', { text: w.seq }), el('td', { text: w.type }),
        el('td', {}, badge(w.status, w.status === 'delivered' ? 'ok' : w.status === 'dead' ? 'bad' : 'warn')),
        el('td', {}, attempts.length ? attempts.map((a) => el('div', { class: 'mono', text: a })) : el('span', { class: 'muted', text: w.last_error || 'not sent yet' })),
        el('td', {}, replay));
    });
    const path = tr.nodes || [];
    const graph = el('div', { class: 'graph', id: 'call-graph' });
    const img = el('img', { alt: 'path: ' + (path.join(' → ') || '(none)'),
      src: '/v1/scenarios/' + encodeURIComponent(c.scenario) + '/graph.svg?path=' + encodeURIComponent(path.join(',')) });
    img.addEventListener('error', () => graph.replaceChildren(el('p', { class: 'muted', text: 'No picture (is Graphviz installed on the server?). Path: ' + (path.join(' → ') || '(none)') })));
    graph.appendChild(img);
    show(
      el('h1', {}, 'Call ', el('code', { text: c.id }), ' ', badge(c.state, stateKind(c.state))),
      dl,
      el('div', { class: 'cols' },
        el('div', {},
          el('h2', { text: 'Timeline' }),
          table('timeline', ['At', 'What', '', ''], items.map((i) => i.row), 'Nothing happened in the dialogue (not answered, or still up).'),
          el('h2', { text: 'Answers' }),
          table('answers', ['Question', 'Input', 'Value / transcript', 'Intent', 'Confidence'], answers, 'No answers.'),
          el('h2', { text: 'SIP' }),
          table('sip', ['At', 'What', 'Code', 'By / reason'], sip, 'No SIP events.'),
          el('h2', { text: 'Webhooks' }),
          table('webhooks', ['Seq', 'Event', 'Status', 'Attempts', ''], hooks, 'No events.')),
        el('div', {}, el('h2', {}, 'Path through ', el('a', { href: '#/scenarios/' + encodeURIComponent(c.scenario), text: c.scenario })), el('p', {}, el('code', { id: 'call-path', text: path.join(' → ') || '(none)' })), graph)));
  }

  // ---- scenarios ---------------------------------------------------------------------
  async function scenariosPage() {
    const s = await apiOk('GET', '/v1/scenarios');
    const rows = s.scenarios.map((x) => el('tr', { 'data-scenario': x.name },
      el('td', {}, el('a', { href: '#/scenarios/' + encodeURIComponent(x.name), text: x.name })),
      el('td', { text: text(x.description) }), el('td', { text: x.languages.join(', ') }),
      el('td', { text: x.nodes.length })));
    show(el('h1', { text: 'Scenarios' }), table('scenarios', ['Scenario', 'Description', 'Languages', 'Nodes'], rows, 'No scenario is loaded.'));
  }
  async function scenarioPage(name, params) {
    let path = [];
    const call = params.get('call');
    if (call) {
      const c = await apiOk('GET', '/v1/calls/' + encodeURIComponent(call));
      path = (c.trace && c.trace.nodes) || [];
      // A call still up has no path yet: the live view knows its current node.
      if (!path.length) {
        const s = await apiOk('GET', '/v1/status');
        const live = s.calls.find((x) => x.call_ref === call);
        if (live) path = [live.node];
      }
    }
    const graph = el('div', { class: 'graph', id: 'scenario-graph' });
    const img = el('img', { alt: 'graph of ' + name, src: '/v1/scenarios/' + encodeURIComponent(name) + '/graph.svg' + (path.length ? '?path=' + encodeURIComponent(path.join(',')) : '') });
    img.addEventListener('error', () => graph.replaceChildren(el('p', { class: 'muted', text: 'No picture: the server cannot run Graphviz.' })));
    graph.appendChild(img);
    show(el('h1', {}, 'Scenario ', el('code', { text: name })),
      call ? el('p', {}, 'Path of call ', el('a', { href: '#/calls/' + encodeURIComponent(call), class: 'mono', text: call }), ': ', el('code', { text: path.join(' → ') || '(none yet)' })) : null,
      graph);
  }

  // ---- campaigns ---------------------------------------------------------------------
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  const breakdown = (o) => Object.entries(o || {}).map(([k, v]) => `${k} ${v}`).join(', ');
  // Whether this server offers the campaign API: asked of its reference (/openapi.json)
  // rather than by a request that would fail with 404 (and an error in the browser log).
  let campaignApi = null;
  async function hasCampaignApi() {
    if (campaignApi === null) {
      const spec = await apiOk('GET', '/openapi.json');
      campaignApi = !!(spec && spec.paths && spec.paths['/v1/campaigns']);
    }
    return campaignApi;
  }
  async function campaignsPage() {
    const r = (await hasCampaignApi()) ? await api('GET', '/v1/campaigns') : { status: 404, json: null };
    if (r.status === 404) {
      show(el('h1', { text: 'Campaigns' }),
        el('p', { id: 'campaigns-empty', class: 'muted', text: 'No campaigns to show: this server does not offer the campaign API (GET /v1/campaigns).' }));
      return;
    }
    if (r.status >= 400) throw new Error('GET /v1/campaigns: ' + ((r.json && r.json.error) || 'HTTP ' + r.status));
    const list = (r.json && r.json.campaigns) || [];
    const act = (name, what) => async (ev) => {
      ev.target.disabled = true;
      try {
        await apiOk('POST', `/v1/campaigns/${encodeURIComponent(name)}/${what}`);
        await campaignsPage();
      } catch (e) { setError(e.message); ev.target.disabled = false; }
    };
    const rows = list.map((c) => {
      const done = sum(c.completed) + sum(c.failed);
      const total = done + (c.queued || 0) + (c.dialling || 0);
      const pct = total ? Math.round((100 * done) / total) : 0;
      const bar = el('span', { class: 'bar', title: `${pct}% done` }, el('span', {}));
      bar.firstChild.style.width = pct + '%';
      return el('tr', { 'data-campaign': c.name },
        el('td', {}, el('a', { href: '#/calls?campaign=' + encodeURIComponent(c.name), text: c.name })),
        el('td', { class: 'campaign-state' }, c.paused ? badge('paused', 'warn') : badge('running', 'ok')),
        el('td', { class: 'queued', text: c.queued || 0 }),
        el('td', { class: 'dialling', text: c.dialling || 0 }),
        el('td', {}, String(sum(c.completed)), ' ', el('span', { class: 'muted', text: breakdown(c.completed) })),
        el('td', {}, String(sum(c.failed)), ' ', el('span', { class: 'muted', text: breakdown(c.failed) })),
        el('td', {}, bar, ` ${done}/${total}`),
        el('td', {}, c.paused
          ? el('button', { class: 'resume', 'data-campaign': c.name, text: 'Resume', onclick: act(c.name, 'resume') })
          : el('button', { class: 'pause', 'data-campaign': c.name, text: 'Pause', onclick: act(c.name, 'pause') })));
    });
    show(el('h1', { text: 'Campaigns' }),
      table('campaigns', ['Campaign', 'State', 'Queued', 'Dialling', 'Completed', 'Failed', 'Progress', ''], rows, 'No campaigns are configured.'));
    if (!timer) refreshEvery(5000, async () => { if (parseHash().parts[0] === 'campaigns') await campaignsPage(); });
  }

  // ---- dead letters ------------------------------------------------------------------
  async function deadPage(params) {
    const q = new URLSearchParams({ status: 'dead', limit: '100' });
    if (params.get('after')) q.set('after', params.get('after'));
    const r = await apiOk('GET', '/v1/events?' + q.toString());
    const rows = r.events.map((e) => el('tr', { 'data-event': e.id },
      el('td', { class: 'mono', text: e.id }),
      el('td', { text: e.type }),
      el('td', {}, el('a', { href: '#/calls/' + encodeURIComponent(e.call_ref), class: 'mono', text: e.call_ref.slice(0, 8) })),
      el('td', { text: e.attempts }),
      el('td', { text: text(e.last_error) }),
      el('td', { class: 't', text: fmtTime(e.updated_at) }),
      el('td', {}, el('button', { class: 'replay', 'data-event': e.id, text: 'Replay', onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await apiOk('POST', '/v1/events/' + encodeURIComponent(e.id) + '/replay');
          ev.target.replaceWith(badge('pending again', 'ok'));
        } catch (err) { setError(err.message); ev.target.disabled = false; }
      } }))));
    const more = r.next_after ? el('a', { id: 'older', href: '#/dead?after=' + r.next_after, text: 'more →' }) : null;
    show(el('h1', { text: 'Dead letters' }),
      el('p', { class: 'muted', text: 'Events the CRM never accepted after every attempt (or answered 410). Replay sends the same event again, with the same webhook-id.' }),
      table('dead', ['Event', 'Type', 'Call', 'Attempts', 'Last error', 'Last attempt', ''], rows, 'No dead letters.'),
      el('p', {}, more));
  }

  window.addEventListener('hashchange', route);
  route();
})();
