/*
 * The gateway's operator console: every page is drawn in the browser from the
 * public JSON API under /api, so a dashboard can read all it shows. No
 * framework and no build step; Chart.js (vendored) draws the charts.
 * Data is only ever put into the page as text (textContent), never as HTML.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- DOM

  /** An element with properties (`class`, `text`, `on`, `data`, attributes) and children. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') el.className = value;
      else if (name === 'text') el.textContent = value;
      else if (name === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      else if (name === 'data') Object.assign(el.dataset, value);
      else if (name in el && typeof value !== 'string') el[name] = value;
      else el.setAttribute(name, value === true ? '' : value);
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const main = document.getElementById('main');

  // ---------------------------------------------------------------- formatting

  const numberFormat = new Intl.NumberFormat();
  const percentFormat = new Intl.NumberFormat(undefined, {
    style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1,
  });
  // sv-SE writes dates as ISO does (2025-03-10 15:03:51), in the browser's zone.
  const timeFormat = new Intl.DateTimeFormat('sv-SE', { dateStyle: 'short', timeStyle: 'medium' });
  const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

  const fmt = {
    int: (n) => (n === null || n === undefined ? '—' : numberFormat.format(n)),
    pct: (r) => (r === null || r === undefined ? '—' : percentFormat.format(r)),
    bytes(n) {
      if (n < 1024) return `${numberFormat.format(n)} B`;
      if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
      return `${(n / 1024 / 1024).toFixed(1)} MB`;
    },
    time: (iso) => (iso ? timeFormat.format(new Date(iso)) : '—'),
    ago(iso) {
      const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
      if (seconds < 0) return 'just now';
      if (seconds < 60) return `${Math.floor(seconds)} s ago`;
      if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
      if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
      return `${Math.floor(seconds / 86400)} d ago`;
    },
    shortId: (id) => (id ? id.slice(0, 8) : '—'),
    /** "1 event", "3 events". */
    count: (n, one, many = `${one}s`) => `${numberFormat.format(n)} ${n === 1 ? one : many}`,
  };

  /** A time cell: local time, its exact UTC instant on hover. */
  function timeEl(iso, withAgo) {
    if (!iso) return h('span', { class: 'muted', text: '—' });
    return h('time', { datetime: iso, title: `${iso} (UTC)` }, fmt.time(iso),
      withAgo ? h('span', { class: 'ago', text: ` · ${fmt.ago(iso)}` }) : null);
  }

  /** A day (in the browser's zone), its exact instant on hover. */
  function dayEl(iso) {
    return h('time', { datetime: iso, title: `${fmt.time(iso)} (${iso} UTC)` }, fmt.time(iso).slice(0, 10));
  }

  const PROVIDERS = ['lemlist', 'postmark', 'phantombuster'];
  const PROVIDER_NAMES = { lemlist: 'lemlist', postmark: 'Postmark', phantombuster: 'PhantomBuster' };
  const STATUSES = {
    processed: 'new events, all attached to a campaign',
    duplicate: 'every event was stored already',
    unmatched: 'new events, some with no campaign instance yet',
    ignored: 'nothing to record (a type outside the vocabulary, a test, a failed run)',
    rejected: 'not accepted: see its cause',
    pending: 'PhantomBuster result not fetched yet; reprocess fetches it',
    failed: 'the gateway failed on it; reprocess tries again',
  };
  const ATTENTION = ['rejected', 'unmatched', 'pending', 'failed'];

  const providerBadge = (p) => h('span', { class: `badge provider-${p}`, text: PROVIDER_NAMES[p] || p });
  const statusBadge = (s) => h('span', { class: `badge status-${s}`, text: s, title: STATUSES[s] || '' });

  const EVENT_LABELS = {
    sent: 'Sent', delivered: 'Delivered', opened: 'Opened', clicked: 'Clicked',
    replied: 'Replied', bounced: 'Bounced', unsubscribed: 'Unsubscribed',
    spam_complaint: 'Spam complaints', failed: 'Failed', profile_visited: 'Profile visits',
    connection_requested: 'Connection requests', connection_accepted: 'Connections accepted',
    message_sent: 'Messages sent', voice_message_sent: 'Voice messages',
  };
  const EVENT_COLORS = {
    sent: '#64748b', delivered: '#0ea5e9', opened: '#6366f1', clicked: '#a855f7',
    replied: '#16a34a', bounced: '#dc2626', unsubscribed: '#f59e0b', spam_complaint: '#be123c',
    failed: '#7f1d1d', profile_visited: '#94a3b8', connection_requested: '#0891b2',
    connection_accepted: '#db2777', message_sent: '#2563eb', voice_message_sent: '#7c3aed',
  };
  const FUNNEL = {
    email: ['sent', 'delivered', 'opened', 'clicked', 'replied'],
    linkedin: ['profile_visited', 'connection_requested', 'connection_accepted', 'message_sent',
      'voice_message_sent', 'replied'],
  };
  const CHANNEL_NAMES = { email: 'E-mail', linkedin: 'LinkedIn' };
  // One event, as a row of the events table says it.
  const EVENT_NAMES = {
    spam_complaint: 'Spam complaint', profile_visited: 'Profile visited',
    connection_requested: 'Connection requested', connection_accepted: 'Connection accepted',
    message_sent: 'Message sent', voice_message_sent: 'Voice message sent',
  };
  const eventLabel = (t) => EVENT_LABELS[t] || humanize(t);
  const eventName = (t) => EVENT_NAMES[t] || EVENT_LABELS[t] || humanize(t);

  function humanize(key) {
    const words = String(key).replace(/_/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  // ---------------------------------------------------------------- API key

  const KEY_STORE = 'gateway.console.apiKey';
  const keyStore = {
    get: () => sessionStorage.getItem(KEY_STORE),
    set(key) { sessionStorage.setItem(KEY_STORE, key); showKeyStatus(); },
    clear() { sessionStorage.removeItem(KEY_STORE); showKeyStatus(); },
  };

  function showKeyStatus() {
    const button = document.getElementById('key-status');
    const set = Boolean(keyStore.get());
    button.textContent = set ? 'API key: set · forget' : 'API key: not set';
    button.classList.toggle('is-set', set);
    button.title = set
      ? 'The key is kept in this tab only; click to forget it now'
      : 'Actions ask for the key; click to enter it now';
  }

  /** Ask for the key in the dialog; the key, or null when cancelled. */
  function askForKey(reason) {
    const dialog = document.getElementById('key-dialog');
    const form = document.getElementById('key-form');
    const input = document.getElementById('key-input');
    document.getElementById('key-reason').textContent = reason;
    input.value = '';
    return new Promise((resolve) => {
      const done = (key) => {
        form.removeEventListener('submit', onSubmit);
        cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        resolve(key);
      };
      const onSubmit = (ev) => {
        ev.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        keyStore.set(key);
        done(key);
      };
      const onCancel = (ev) => { ev.preventDefault(); done(null); };
      const cancel = document.getElementById('key-cancel');
      form.addEventListener('submit', onSubmit);
      cancel.addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      input.focus();
    });
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, problem) {
      const detail = problem && (problem.detail || problem.title);
      super(detail ? `${detail}` : `the gateway answered ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  /** The user closed the key dialog: stop quietly. */
  class Cancelled extends Error {}

  /** `/api` + path + query; arrays repeat their parameter, empty values are left out. */
  function apiUrl(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      for (const v of [].concat(value)) if (v !== undefined && v !== null && v !== '') query.append(name, v);
    }
    const text = query.toString();
    return `/api${path}${text ? `?${text}` : ''}`;
  }

  /**
   * One API call. Actions (`action: true`) need the key and ask for it first;
   * any 401 asks again (reads need the key when GATEWAY_API_READS_OPEN is false).
   * A 401 comes from the guard before anything runs, so repeating is safe.
   */
  async function api(path, { method = 'GET', params, body, action = false } = {}) {
    let key = keyStore.get();
    if (action && !key) {
      key = await askForKey('This action needs the gateway\'s API key.');
      if (!key) throw new Cancelled();
    }
    for (;;) {
      const headers = { Accept: 'application/json' };
      if (key) headers.Authorization = `Bearer ${key}`;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const response = await fetch(apiUrl(path, params), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit', cache: 'no-store',
      });
      if (response.status === 401) {
        keyStore.clear();
        key = await askForKey(key
          ? 'The gateway refused this key. Enter the current one.'
          : 'This gateway needs its API key to read (GATEWAY_API_READS_OPEN is false).');
        if (!key) throw new Cancelled();
        continue;
      }
      const data = response.status === 204 ? null : await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(response.status, data);
      return data;
    }
  }

  // ---------------------------------------------------------------- building blocks

  function pageHeader(title, subtitle, ...actions) {
    return h('div', { class: 'page-header' },
      h('div', null, h('h1', { text: title }), subtitle ? h('p', { class: 'subtitle' }, subtitle) : null),
      actions.length ? h('div', { class: 'page-actions' }, actions) : null);
  }

  function card(title, ...body) {
    return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title' }, title) : null, body);
  }

  function empty(message, ...more) {
    return h('div', { class: 'empty' }, h('p', { text: message }), more);
  }

  function notice(kind, ...content) {
    return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, content);
  }

  function errorNotice(error, retry) {
    const again = (label) => (retry ? h('button', { class: 'link-button', type: 'button', text: label, on: { click: retry } }) : null);
    if (error instanceof Cancelled) return notice('warn', 'No API key given: nothing was asked of the gateway. ', again('Enter it'));
    if (!(error instanceof ApiError)) {
      console.error(error); // a network failure, or a bug of this page: say it where it is seen
      return notice('error', h('strong', { text: 'Could not reach the gateway: ' }), `${error.message}. `, again('Retry'));
    }
    const field = error.problem && error.problem.field ? ` (${error.problem.field})` : '';
    return notice('error', h('strong', { text: 'The gateway said ' }), `${error.status}: ${error.message}${field}. `, again('Retry'));
  }

  const loading = () => h('div', { class: 'loading', text: 'Loading…' });

  /** A table: columns of {label, cell(row), num?}; rows; optional row link. */
  function table(columns, rows, { rowHref, className } = {}) {
    const head = h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col', title: c.title }, c.label)));
    const body = rows.map((row) => {
      const tr = h('tr', { class: rowHref ? 'clickable' : null },
        columns.map((c) => h('td', { class: c.num ? 'num' : c.class || null }, c.cell(row))));
      if (rowHref) {
        const href = rowHref(row);
        tr.addEventListener('click', (ev) => {
          if (ev.target.closest('a, button, input, select')) return;
          if (window.getSelection().toString()) return;
          location.href = href;
        });
      }
      return tr;
    });
    return h('div', { class: 'table-wrap' }, h('table', { class: className || 'table' }, h('thead', null, head), h('tbody', null, body)));
  }

  function facts(pairs) {
    return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([label, value]) => [h('dt', { text: label }), h('dd', null, value)]));
  }

  function mono(text, title) {
    return h('code', { class: 'mono', title: title || text, text });
  }

  /** Pretty JSON with its tokens coloured; built from text nodes only. */
  function jsonView(value) {
    const text = JSON.stringify(value, null, 2);
    const pre = h('pre', { class: 'json' });
    const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(?:true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    let at = 0;
    for (const match of text.matchAll(token)) {
      if (match.index > at) pre.append(text.slice(at, match.index));
      let kind = 'num';
      if (match[1]) kind = match[2] ? 'key' : 'str';
      else if (/^(true|false|null)$/.test(match[0])) kind = 'lit';
      pre.append(h('span', { class: `j-${kind}`, text: match[0] }));
      at = match.index + match[0].length;
    }
    pre.append(text.slice(at));
    return pre;
  }

  function keyValueTable(object, emptyText) {
    const entries = Object.entries(object || {});
    if (!entries.length) return h('p', { class: 'muted', text: emptyText });
    return table([
      { label: 'Name', cell: ([k]) => mono(k), class: 'nowrap' },
      { label: 'Value', cell: ([, v]) => h('span', { class: 'mono wrap', text: typeof v === 'string' ? v : JSON.stringify(v) }) },
    ], entries, { className: 'table compact' });
  }

  function campaignKeys(config) {
    const chips = [];
    const seen = new Set();
    const add = (provider, key) => !seen.has(`${provider}:${key}`) && seen.add(`${provider}:${key}`) && chips.push(h('span', { class: `chip provider-${provider}`, title: `${PROVIDER_NAMES[provider]} campaign key` }, PROVIDER_NAMES[provider], ' ', h('code', { text: String(key) })));
    for (const [provider, single, list] of MAPPING_KEYS) {
      if (config[single] !== undefined && config[single] !== null) add(provider, config[single]);
      for (const key of Array.isArray(config[list]) ? config[list] : []) add(provider, key);
    }
    return chips.length ? h('span', { class: 'chips' }, chips) : h('span', { class: 'muted', text: 'no campaign key' });
  }

  // provider, its single key in provider_config, its list key.
  const MAPPING_KEYS = [
    ['lemlist', 'lemlist_campaign_id', 'lemlist_campaign_ids'],
    ['postmark', 'postmark_tag', 'postmark_tags'],
    ['phantombuster', 'phantombuster_agent_id', 'phantombuster_agent_ids'],
  ];

  /** The page's query string as an object, arrays for repeated names. */
  function readQuery() {
    const out = {};
    for (const [name, value] of new URLSearchParams(location.search)) {
      out[name] = name in out ? [].concat(out[name], value) : value;
    }
    return out;
  }

  function setQuery(params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      for (const v of [].concat(value)) if (v !== undefined && v !== null && v !== '') query.append(name, v);
    }
    const text = query.toString();
    const url = `${location.pathname}${text ? `?${text}` : ''}`;
    if (url !== `${location.pathname}${location.search}`) history.pushState(null, '', url);
  }

  /** `datetime-local` value (browser zone) <-> ISO instant. */
  const localInput = {
    toIso: (value) => (value ? new Date(value).toISOString().replace('.000Z', 'Z') : ''),
    fromIso(iso) {
      if (!iso) return '';
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return '';
      const pad = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    },
  };

  // ---------------------------------------------------------------- deliveries

  async function deliveriesPage() {
    const query = readQuery();
    const filters = {
      q: query.q || '',
      provider: query.provider || '',
      status: [].concat(query.status || []),
      from: query.from || '',
      to: query.to || '',
    };
    const form = h('form', { class: 'filters', role: 'search' });
    const search = h('input', { type: 'search', name: 'q', value: filters.q, placeholder: 'Lead e-mail, campaign key or provider event id', class: 'search', 'aria-label': 'Search by business key' });
    const provider = h('select', { name: 'provider', 'aria-label': 'Provider' },
      h('option', { value: '', text: 'All providers' }),
      PROVIDERS.map((p) => h('option', { value: p, text: PROVIDER_NAMES[p], selected: p === filters.provider })));
    const statusBoxes = Object.keys(STATUSES).map((s) => h('label', { class: `toggle status-${s}`, title: STATUSES[s] },
      h('input', { type: 'checkbox', name: 'status', value: s, checked: filters.status.includes(s) }), s));
    const from = h('input', { type: 'datetime-local', name: 'from', value: localInput.fromIso(filters.from), 'aria-label': 'Received from' });
    const to = h('input', { type: 'datetime-local', name: 'to', value: localInput.fromIso(filters.to), 'aria-label': 'Received before' });
    append(form, [
      h('div', { class: 'filter-row' }, search, provider,
        h('button', { type: 'submit', class: 'button primary', text: 'Search' })),
      h('div', { class: 'filter-row' },
        h('span', { class: 'filter-label', text: 'Status' }), h('div', { class: 'toggles' }, statusBoxes),
        h('button', { type: 'button', class: 'link-button', text: 'needs attention', title: ATTENTION.join(', '), on: { click: () => statusBoxes.forEach((l) => { l.firstChild.checked = ATTENTION.includes(l.firstChild.value); }) } })),
      h('div', { class: 'filter-row' },
        h('label', { class: 'inline-field' }, h('span', { text: 'Received from' }), from),
        h('label', { class: 'inline-field' }, h('span', { text: 'before' }), to),
        h('span', { class: 'muted small', text: `(${localZone})` }),
        h('a', { class: 'link-button push-right', href: location.pathname, text: 'Clear filters' })),
    ]);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      setQuery({
        q: search.value.trim(),
        provider: provider.value,
        status: statusBoxes.filter((l) => l.firstChild.checked).map((l) => l.firstChild.value),
        from: localInput.toIso(from.value),
        to: localInput.toIso(to.value),
      });
      route();
    });

    const results = h('div', { class: 'results' }, loading());
    const refresh = h('button', { type: 'button', class: 'button', text: 'Refresh', on: { click: () => load([]) } });
    render(pageHeader('Deliveries', 'Every webhook the gateway stored, as it arrived: newest first.', refresh), card(null, form), results);

    // Cursors of the pages before this one (for "Newer"), and the one after it.
    async function load(history, cursor) {
      results.replaceChildren(loading());
      let page;
      try {
        page = await api('/deliveries', { params: { ...filters, ...DELIVERY_ORDER, cursor, limit: 50 } });
      } catch (error) {
        results.replaceChildren(errorNotice(error, () => load(history, cursor)));
        return;
      }
      const filtered = filters.q || filters.provider || filters.status.length || filters.from || filters.to;
      if (!page.items.length) {
        results.replaceChildren(card(null, filtered
          ? empty('No delivery matches these filters.', h('a', { href: location.pathname, text: 'Clear filters' }))
          : empty('No webhook has arrived yet.', h('p', { class: 'muted' }, 'Point lemlist, Postmark and PhantomBuster at the URLs that ', h('code', { text: 'gateway urls' }), ' prints; each delivery shows up here a moment after it is acknowledged.'))));
        return;
      }
      const rows = table([
        { label: 'Received', cell: (d) => h('a', { href: `/console/deliveries/${d.id}` }, timeEl(d.received_at, true)), class: 'nowrap' },
        { label: 'Provider', cell: (d) => providerBadge(d.provider) },
        { label: 'Status', cell: (d) => statusBadge(d.status) },
        { label: 'Events', num: true, title: 'New events written', cell: (d) => fmt.int(d.events_written) },
        { label: 'Dupl.', num: true, title: 'Events that were stored already', cell: (d) => (d.duplicates ? fmt.int(d.duplicates) : h('span', { class: 'muted', text: '0' })) },
        { label: 'Cause', cell: (d) => (d.cause ? h('span', { class: `cause cause-${d.status}`, title: d.cause, text: d.cause }) : h('span', { class: 'muted', text: '—' })), class: 'cause-cell' },
        { label: 'Size', num: true, cell: (d) => fmt.bytes(d.body_size) },
        { label: 'Delivery', cell: (d) => mono(fmt.shortId(d.id), d.id) },
      ], page.items, { rowHref: (d) => `/console/deliveries/${d.id}` });
      const pager = h('div', { class: 'pager' },
        h('span', { class: 'muted', text: `${fmt.int(page.items.length)} on this page${page.next_cursor ? '; older ones on the next' : ''}` }),
        h('button', { type: 'button', class: 'button', text: '← Newer', disabled: !history.length, on: { click: () => load(history.slice(0, -1), history[history.length - 1]) } }),
        h('button', { type: 'button', class: 'button', text: 'Older →', disabled: !page.next_cursor, on: { click: () => load([...history, cursor], page.next_cursor) } }));
      results.replaceChildren(card(null, rows, pager));
    }
    await load([]);
  }

  // The log reads newest first; "Older" follows the API's cursor.
  const DELIVERY_ORDER = { order: 'newest' };

  async function deliveryPage(id) {
    render(loading());
    let delivery;
    try {
      delivery = await api(`/deliveries/${id}`);
    } catch (error) {
      render(backLink('/console/deliveries', 'Deliveries'), error.status === 404
        ? card(null, empty('No delivery with this id.'))
        : errorNotice(error, () => deliveryPage(id)));
      return;
    }
    const outcome = h('div', { class: 'outcome' });
    const reprocess = h('button', { type: 'button', class: 'button primary', text: 'Reprocess', title: 'Normalize this stored delivery again (idempotent: nothing doubles)' });
    reprocess.addEventListener('click', async () => {
      reprocess.disabled = true;
      reprocess.textContent = 'Reprocessing…';
      try {
        const result = await api(`/deliveries/${id}/reprocess`, { method: 'POST', action: true });
        await deliveryPage(id);
        document.querySelector('.outcome').replaceChildren(reprocessNotice(result));
      } catch (error) {
        outcome.replaceChildren(errorNotice(error));
        reprocess.disabled = false;
        reprocess.textContent = 'Reprocess';
      }
    });

    const events = delivery.events || [];
    const instances = await instancesOf(events);
    render(
      backLink('/console/deliveries', 'Deliveries'),
      pageHeader(`Delivery ${fmt.shortId(delivery.id)}`,
        h('span', { class: 'header-badges' }, providerBadge(delivery.provider), statusBadge(delivery.status), ' received ', timeEl(delivery.received_at, true)),
        reprocess),
      outcome,
      delivery.cause ? notice(delivery.status === 'rejected' || delivery.status === 'failed' ? 'error' : 'warn', h('strong', { text: 'Cause: ' }), delivery.cause) : null,
      h('div', { class: 'grid-2' },
        card('Summary', facts([
          ['Delivery id', mono(delivery.id)],
          ['Provider', providerBadge(delivery.provider)],
          ['Outcome', h('span', null, statusBadge(delivery.status), ' ', h('span', { class: 'muted', text: STATUSES[delivery.status] || '' }))],
          ['Received', timeEl(delivery.received_at)],
          ['Processed', timeEl(delivery.processed_at)],
          ['New events', fmt.int(delivery.events_written)],
          ['Duplicates', fmt.int(delivery.duplicates)],
          ['Body size', fmt.bytes(delivery.body_size)],
          delivery.fetched_from ? ['Result fetched from', h('span', { class: 'mono wrap', text: delivery.fetched_from })] : null,
        ])),
        card('Headers', keyValueTable(delivery.headers, 'No headers stored.'), h('h3', { class: 'sub-title', text: 'Query' }), keyValueTable(delivery.query, 'No query parameters (the secret is never stored).'))),
      card(`Events (${fmt.int(delivery.events_total ?? events.length)})`,
        events.length ? eventsTable(events, instances) : empty(eventsEmptyText(delivery)),
        delivery.events_total > events.length
          ? h('p', { class: 'muted small' }, `The first ${fmt.int(events.length)} are shown; all of them: `,
            h('a', { href: apiUrl('/events', { delivery_id: delivery.id }), text: 'GET /api/events?delivery_id=…' }), '.')
          : null),
      card('Body', bodyView(delivery)),
    );
  }

  function eventsEmptyText(delivery) {
    if (delivery.status === 'duplicate') return 'Every event of this delivery was stored already, by an earlier delivery.';
    if (delivery.status === 'rejected') return 'A rejected delivery holds no event.';
    if (delivery.status === 'pending') return 'No event yet: the PhantomBuster result has not been fetched; reprocess fetches it.';
    return 'This delivery produced no event.';
  }

  function reprocessNotice(result) {
    const after = result.delivery.status;
    const changes = [];
    if (result.new_events) changes.push(`${fmt.count(result.new_events, 'new event')}`);
    if (result.events_attached) changes.push(`${fmt.count(result.events_attached, 'event')} attached`);
    if (!result.changed) {
      return notice('info', h('strong', { text: 'Reprocessed: nothing changed. ' }), 'Outcome unchanged: ', statusBadge(after), '.');
    }
    return notice('ok', h('strong', { text: 'Reprocessed. ' }), 'Outcome ', statusBadge(result.before), ' → ', statusBadge(after),
      changes.length ? `; ${changes.join(', ')}.` : '.');
  }

  function eventsTable(events, instances) {
    const campaign = (e) => {
      if (!e.instance_id) return h('a', { href: '/console/unmatched', class: 'badge status-unmatched', text: 'unmatched', title: `No instance maps ${e.campaign_key || 'its campaign key'} yet` });
      const instance = instances.get(e.instance_id);
      return h('a', { href: `/console/campaigns/${e.instance_id}`, text: instance ? instance.name : fmt.shortId(e.instance_id), title: e.instance_id });
    };
    return table([
      { label: 'Time', cell: (e) => timeEl(e.timestamp), class: 'nowrap' },
      { label: 'Event', cell: (e) => h('span', { class: 'event-type' }, h('span', { class: 'dot', data: { type: e.event_type } }), eventName(e.event_type)) },
      { label: 'Channel', cell: (e) => CHANNEL_NAMES[e.channel] || e.channel },
      { label: 'Campaign', cell: campaign, class: 'nowrap' },
      { label: 'Step', num: true, cell: (e) => (e.step_number === null ? '—' : fmt.int(e.step_number)) },
      { label: 'Provider event id', cell: (e) => h('span', { class: 'mono wrap small', text: e.provider_event_id }), class: 'event-id' },
      { label: 'Detail', cell: (e) => metadataSummary(e.metadata) },
    ], events);
  }

  /** The instances these events belong to, by id (names for the events table). */
  async function instancesOf(events) {
    const ids = [...new Set(events.map((e) => e.instance_id).filter(Boolean))];
    const found = await Promise.all(ids.map((id) => api(`/campaigns/instances/${id}`).catch(() => null)));
    return new Map(found.filter(Boolean).map((i) => [i.id, i]));
  }

  function metadataSummary(metadata) {
    const entries = Object.entries(metadata || {});
    if (!entries.length) return h('span', { class: 'muted', text: '—' });
    const text = entries.map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ');
    return h('span', { class: 'metadata', title: text, text });
  }

  function bodyView(delivery) {
    const truncated = delivery.body_truncated
      ? notice('warn', `Only a prefix of the ${fmt.bytes(delivery.body_size)} body was kept: it was over the size limit.`)
      : null;
    if ('body' in delivery) return h('div', null, truncated, jsonView(delivery.body));
    if (typeof delivery.body_base64 !== 'string') return h('p', { class: 'muted', text: 'No body stored.' });
    const bytes = Uint8Array.from(atob(delivery.body_base64), (c) => c.charCodeAt(0));
    let text = null;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      text = null;
    }
    return h('div', null, truncated,
      h('p', { class: 'muted', text: text === null
        ? `The body is not JSON nor UTF-8 text (${fmt.bytes(bytes.length)}); its bytes, base64-encoded:`
        : `The body is not JSON (${fmt.bytes(bytes.length)}); as received:` }),
      h('pre', { class: 'json wrap', text: text === null ? delivery.body_base64 : text }));
  }

  function backLink(href, label) {
    return h('nav', { class: 'crumbs' }, h('a', { href, text: `← ${label}` }));
  }

  // ---------------------------------------------------------------- campaigns

  async function allInstances(params) {
    const items = [];
    let cursor;
    do {
      const page = await api('/campaigns/instances', { params: { ...params, ...(cursor ? { cursor } : {}) } });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }

  async function campaignsPage() {
    const query = readQuery();
    const status = h('select', { 'aria-label': 'Status' }, h('option', { value: '', text: 'Any status' }),
      ['draft', 'active', 'paused', 'completed', 'failed'].map((s) => h('option', { value: s, text: s, selected: s === query.status })));
    status.addEventListener('change', () => { setQuery({ status: status.value }); route(); });
    const results = h('div', null, loading());
    const silent = h('div');
    render(pageHeader('Campaigns', 'Each campaign instance with its counters: people enrolled, and people with at least one such event.', status), silent, results);
    let instances;
    let alerts;
    try {
      [instances, alerts] = await Promise.all([allInstances({ status: query.status }), api('/alerts')]);
    } catch (error) {
      results.replaceChildren(errorNotice(error, campaignsPage));
      return;
    }
    silent.replaceChildren(silenceNotice(alerts.items));
    if (!instances.length) {
      results.replaceChildren(card(null, query.status
        ? empty(`No ${query.status} campaign instance.`)
        : empty('No campaign instance yet.', h('p', { class: 'muted' }, 'Create templates and instances through the management API (', h('a', { href: '/schema', text: 'API docs' }), '), or load the sample data with ', h('code', { text: 'gateway seed' }), '.'))));
      return;
    }
    const counter = (name) => ({ label: humanize(name), num: true, cell: (i) => fmt.int(i.counters[name]) });
    results.replaceChildren(card(null, table([
      { label: 'Campaign', class: 'campaign-name', cell: (i) => h('a', { href: `/console/campaigns/${i.id}`, class: 'strong', text: i.name }) },
      { label: 'Status', cell: (i) => h('span', { class: `badge instance-${i.status}`, text: i.status }) },
      { label: 'Campaign keys', cell: (i) => campaignKeys(i.provider_config) },
      counter('enrolled'), counter('sent'), counter('opened'), counter('clicked'), counter('replied'),
      { label: 'Started', cell: (i) => (i.started_at ? timeEl(i.started_at) : h('span', { class: 'muted', text: 'not started' })), class: 'nowrap' },
    ], instances, { rowHref: (i) => `/console/campaigns/${i.id}` })));
  }

  /** Active campaigns whose providers went quiet (GET /api/alerts), or nothing. */
  function silenceNotice(alerts) {
    if (!alerts.length) return null;
    return notice('warn', h('strong', { text: `${fmt.count(alerts.length, 'campaign provider')} silent longer than allowed` }),
      h('ul', { class: 'alerts' }, alerts.map((a) => h('li', null,
        h('a', { href: `/console/campaigns/${a.instance_id}`, class: 'strong', text: a.instance_name }), ': ',
        `no ${PROVIDER_NAMES[a.provider]} event `,
        a.last_event_at ? ['since ', timeEl(a.last_event_at, true)] : ['since it started, ', timeEl(a.silent_since, true)],
        h('span', { class: 'muted', text: ` (allowed: ${fmt.int(a.silence_after_hours)} h, settings.silence_after_hours)` })))));
  }

  // ---------------------------------------------------------------- performance

  /** Minutes `zone` is ahead of UTC at instant `ms`. */
  function zoneOffset(zone, ms) {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric',
    }).formatToParts(new Date(ms));
    const part = (type) => Number(parts.find((p) => p.type === type).value);
    const asUtc = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
    return (asUtc - Math.floor(ms / 1000) * 1000) / 60000;
  }

  /** The instant midnight starts `day` (YYYY-MM-DD) in `zone`, as ISO (`…Z`). */
  function zonedMidnight(day, zone) {
    const [y, m, d] = day.split('-').map(Number);
    const wall = Date.UTC(y, m - 1, d);
    let instant = wall;
    for (let i = 0; i < 3; i += 1) instant = wall - zoneOffset(zone, instant) * 60000;
    return new Date(instant).toISOString().replace('.000Z', 'Z');
  }

  function addDays(day, n) {
    const d = new Date(`${day}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  function todayIn(zone) {
    return new Intl.DateTimeFormat('sv-SE', { timeZone: zone }).format(new Date());
  }

  const charts = [];

  async function performancePage(id) {
    render(loading());
    let instance;
    try {
      instance = await api(`/campaigns/instances/${id}`);
    } catch (error) {
      render(backLink('/console/campaigns', 'Campaigns'), error.status === 404
        ? card(null, empty('No campaign instance with this id.'))
        : errorNotice(error, () => performancePage(id)));
      return;
    }
    const query = readQuery();
    const instanceZone = instance.settings && typeof instance.settings.timezone === 'string' ? instance.settings.timezone : null;
    const zone = query.tz || instanceZone || 'UTC';
    // The page's range is in days of `zone`, `to` inclusive; the API's is [from, to) in instants.
    const params = {};
    if (query.from) params.from = zonedMidnight(query.from, zone);
    if (query.to) params.to = zonedMidnight(addDays(query.to, 1), zone);
    if (query.tz) params.tz = query.tz;

    const controls = rangeControls(query, zone, instanceZone);
    const body = h('div', null, loading());
    render(
      backLink('/console/campaigns', 'Campaigns'),
      pageHeader(instance.name,
        h('span', { class: 'header-badges' }, h('span', { class: `badge instance-${instance.status}`, text: instance.status }), campaignKeys(instance.provider_config)),
        h('a', { class: 'button', href: apiUrl(`/campaigns/instances/${id}/performance`, params), text: 'JSON', title: 'The API answer behind this page', target: '_blank', rel: 'noopener' })),
      card(null, controls),
      body,
    );
    let perf;
    try {
      perf = await api(`/campaigns/instances/${id}/performance`, { params });
    } catch (error) {
      body.replaceChildren(errorNotice(error, () => performancePage(id)));
      return;
    }
    body.replaceChildren(...performanceView(perf, instance, zone));
    drawPerformanceCharts(perf);
  }

  function rangeControls(query, zone, instanceZone) {
    const form = h('form', { class: 'filters' });
    const from = h('input', { type: 'date', name: 'from', value: query.from || '', 'aria-label': 'From day' });
    const to = h('input', { type: 'date', name: 'to', value: query.to || '', 'aria-label': 'To day (included)' });
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    const tz = h('select', { name: 'tz', 'aria-label': 'Time zone' },
      h('option', { value: '', text: `Campaign default (${instanceZone || 'UTC'})` }),
      [...new Set(['UTC', ...zones])].map((z) => h('option', { value: z, text: z, selected: z === query.tz })));
    const submit = (values) => { setQuery(values); route(); };
    const preset = (label, days) => h('button', {
      type: 'button', class: 'button small', text: label,
      on: { click: () => submit(days ? { from: addDays(todayIn(zone), 1 - days), to: todayIn(zone), tz: tz.value } : { tz: tz.value }) },
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit({ from: from.value, to: to.value, tz: tz.value });
    });
    return append(form, [h('div', { class: 'filter-row' },
      h('label', { class: 'inline-field' }, h('span', { text: 'From' }), from),
      h('label', { class: 'inline-field' }, h('span', { text: 'to' }), to),
      h('label', { class: 'inline-field' }, h('span', { text: 'Time zone' }), tz),
      h('button', { type: 'submit', class: 'button primary', text: 'Apply' }),
      h('span', { class: 'presets' }, preset('All time', 0), preset('Last 7 days', 7), preset('Last 30 days', 30), preset('Last 90 days', 90)))]);
  }

  const RATE_LABELS = {
    delivery_rate: 'Delivery rate', open_rate: 'Open rate', click_rate: 'Click rate',
    reply_rate: 'Reply rate', bounce_rate: 'Bounce rate', unsubscribe_rate: 'Unsubscribe rate',
    connection_accept_rate: 'Connection accept rate',
  };

  /** A rate definition of any shape, as one line of text. */
  function definitionText(definition) {
    if (definition === undefined || definition === null) return null;
    if (typeof definition === 'string') return definition;
    if (typeof definition.description === 'string') return definition.description;
    return JSON.stringify(definition);
  }

  function rateTiles(perf) {
    const rates = perf.rates || {};
    const definitions = perf.rate_definitions || {};
    const tiles = [h('div', { class: 'tile', data: { metric: 'enrolled' } },
      h('div', { class: 'tile-label', text: 'Enrolled' }),
      h('div', { class: 'tile-value', text: fmt.int(perf.enrolled) }),
      h('div', { class: 'tile-note', text: perf.from || perf.to ? 'enrolled in this range' : 'people' }))];
    if (perf.human && typeof perf.human.email_reach === 'number') {
      tiles.push(h('div', { class: 'tile', data: { metric: 'email_reach' }, title: 'People with at least one e-mail sent, delivered or bounced: what the e-mail rates divide by' },
        h('div', { class: 'tile-label', text: 'E-mail reach' }),
        h('div', { class: 'tile-value', text: fmt.int(perf.human.email_reach) }),
        h('div', { class: 'tile-note', text: 'people e-mailed' })));
    }
    for (const [name, value] of Object.entries(rates)) {
      if (name.startsWith('human_') && `${name.slice(6)}` in rates) continue; // shown beside its raw rate
      const human = rates[`human_${name}`];
      const hasHuman = `human_${name}` in rates;
      const definition = definitionText(definitions[name]);
      tiles.push(h('div', { class: 'tile', data: { metric: name }, title: definition || '' },
        h('div', { class: 'tile-label', text: RATE_LABELS[name] || humanize(name) }),
        h('div', { class: 'tile-value' },
          h('span', { class: 'rate-raw', data: { value: value === null ? '' : String(value) }, text: fmt.pct(value) }),
          hasHuman ? h('span', { class: 'rate-human', data: { value: human === null ? '' : String(human) }, title: 'Human: opens and clicks not made by a privacy proxy or a scanner' }, h('span', { class: 'rate-human-label', text: 'human ' }), fmt.pct(human)) : null),
        h('div', { class: 'tile-note', text: value === null ? 'nothing to divide by yet' : '' })));
    }
    const described = Object.keys(rates).map((name) => [name, definitionText(definitions[name])]).filter(([, text]) => text);
    return h('div', null, h('div', { class: 'tiles' }, tiles),
      described.length ? h('details', { class: 'definitions' }, h('summary', { text: 'How each rate is counted' }),
        h('dl', null, described.map(([name, text]) => [h('dt', { text: RATE_LABELS[name] || humanize(name) }), h('dd', { data: { rate: name }, text })]))) : null);
  }

  function performanceView(perf, instance, zone) {
    const zoneLabel = perf.tz || perf.timezone || zone;
    const activeChannels = perf.by_channel.filter((c) => Object.values(c.totals).some((n) => n > 0)).map((c) => c.channel);
    const human = perf.human && perf.human.unique ? perf.human.unique : null;
    const hasEvents = Object.values(perf.totals).some((n) => n > 0);
    const range = perf.from || perf.to
      ? `${perf.from ? fmt.time(perf.from) : 'the beginning'} to ${perf.to ? fmt.time(perf.to) : 'now'}`
      : 'all time';
    const view = [
      h('p', { class: 'muted range-note' }, `Showing ${range}; days in ${zoneLabel}.`),
      rateTiles(perf),
    ];
    if (!hasEvents) {
      view.push(card(null, empty(perf.from || perf.to ? 'No event of this campaign in this range.' : 'No event attached to this campaign yet.',
        h('p', { class: 'muted' }, 'Events attach when a webhook names one of its campaign keys; keys that attached to nothing are listed under ', h('a', { href: '/console/unmatched', text: 'Unmatched' }), '.'))));
      return view;
    }
    view.push(card('Events per day', h('p', { class: 'muted small', text: `Events of each type per day (${zoneLabel}); click a legend entry to hide or show it` }),
      h('div', { class: 'chart tall' }, h('canvas', { id: 'chart-daily', role: 'img', 'aria-label': 'Events per day by type' })),
      h('details', { class: 'as-table' }, h('summary', { text: 'The same, as a table' }), dailyTable(perf))));
    const stepChannels = activeChannels.filter((c) => perf.by_step.some((s) => s.channel === c));
    if (stepChannels.length) {
      view.push(h('div', { class: 'grid-2' }, stepChannels.map((channel) => card(`${CHANNEL_NAMES[channel]} funnel by step`,
        h('p', { class: 'muted small', text: 'People with at least one such event, per step of the sequence' }),
        h('div', { class: 'chart' }, h('canvas', { id: `chart-steps-${channel}`, role: 'img', 'aria-label': `${CHANNEL_NAMES[channel]} funnel by step` })),
        stepTable(perf, channel)))));
    }
    view.push(h('div', { class: 'grid-2' }, perf.by_channel.filter((c) => activeChannels.includes(c.channel)).map((c) => card(`${CHANNEL_NAMES[c.channel]}: all steps`,
      table([
        { label: 'Event', cell: ([t]) => h('span', { class: 'event-type' }, h('span', { class: 'dot', data: { type: t } }), eventLabel(t)) },
        { label: 'Events', num: true, cell: ([t]) => fmt.int(c.totals[t]) },
        { label: 'People', num: true, title: 'Enrollments with at least one such event', cell: ([t]) => fmt.int(c.unique[t]) },
        human ? { label: 'Human', num: true, title: 'People with at least one open or click not made by a privacy proxy or a scanner', cell: ([t]) => (t in human ? fmt.int(human[t]) : '') } : null,
      ].filter(Boolean), Object.keys(c.totals).map((t) => [t]), { className: `table compact channel-${c.channel}` }),
    ))));
    view.push(card('By provider', h('p', { class: 'muted small', text: 'Events each provider reported' }), providerTable(perf)));
    return view;
  }

  function dailyTable(perf) {
    const types = Object.keys(perf.totals).filter((t) => perf.daily.some((d) => d.totals[t] > 0));
    return table([
      { label: 'Day', cell: (d) => d.day, class: 'nowrap' },
      ...types.map((t) => ({ label: eventLabel(t), num: true, cell: (d) => fmt.int(d.totals[t]) })),
    ], perf.daily, { className: 'table compact daily' });
  }

  function providerTable(perf) {
    const rows = perf.by_provider.filter((p) => Object.values(p.totals).some((n) => n > 0));
    const types = Object.keys(perf.totals).filter((t) => rows.some((p) => p.totals[t] > 0));
    return table([
      { label: 'Provider', cell: (p) => providerBadge(p.provider) },
      ...types.map((t) => ({ label: eventLabel(t), num: true, cell: (p) => fmt.int(p.totals[t]) })),
      { label: 'All events', num: true, cell: (p) => fmt.int(Object.values(p.totals).reduce((a, b) => a + b, 0)) },
    ], rows, { className: 'table compact by-provider' });
  }

  function stepTable(perf, channel) {
    const rows = perf.by_step.filter((s) => s.channel === channel);
    const types = Object.keys(rows[0].unique).filter((t) => rows.some((s) => s.unique[t] > 0));
    const human = rows.some((s) => s.human && s.human.unique);
    const humanColumn = (t) => ({
      label: `${eventLabel(t)} (human)`, num: true,
      title: 'People with at least one such event not made by a privacy proxy or a scanner',
      cell: (s) => (s.human && s.human.unique ? fmt.int(s.human.unique[t]) : ''),
    });
    return table([
      { label: 'Step', cell: (s) => stepLabel(s.step_number), class: 'nowrap' },
      ...types.flatMap((t) => [
        { label: eventLabel(t), num: true, title: 'People with at least one such event', cell: (s) => fmt.int(s.unique[t]) },
        human && (t === 'opened' || t === 'clicked') ? humanColumn(t) : null,
      ]).filter(Boolean),
    ], rows, { className: `table compact steps-${channel}` });
  }

  const stepLabel = (n) => (n === null ? 'Without a step' : `Step ${n}`);

  // ---------------------------------------------------------------- charts

  function drawPerformanceCharts(perf) {
    if (typeof Chart === 'undefined') return; // the tables carry every number
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = '#475569';
    Chart.defaults.animation = false;
    const daily = document.getElementById('chart-daily');
    if (daily) {
      const types = Object.keys(perf.totals).filter((t) => perf.daily.some((d) => d.totals[t] > 0));
      charts.push(new Chart(daily, {
        type: 'bar',
        data: {
          labels: perf.daily.map((d) => d.day),
          datasets: types.map((t) => ({
            label: eventLabel(t), eventType: t,
            data: perf.daily.map((d) => d.totals[t]),
            backgroundColor: EVENT_COLORS[t],
          })),
        },
        options: chartOptions({ stacked: true }),
      }));
    }
    for (const channel of Object.keys(FUNNEL)) {
      const canvas = document.getElementById(`chart-steps-${channel}`);
      if (!canvas) continue;
      const steps = perf.by_step.filter((s) => s.channel === channel);
      const types = FUNNEL[channel].filter((t) => steps.some((s) => s.unique[t] > 0));
      charts.push(new Chart(canvas, {
        type: 'bar',
        data: {
          labels: steps.map((s) => stepLabel(s.step_number)),
          datasets: types.map((t) => ({
            label: eventLabel(t), eventType: t,
            data: steps.map((s) => s.unique[t]),
            backgroundColor: EVENT_COLORS[t], borderRadius: 3,
          })),
        },
        options: chartOptions({ stacked: false }),
      }));
    }
  }

  function chartOptions({ stacked }) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 12, boxHeight: 12, usePointStyle: false } },
        tooltip: { callbacks: { label: (ctx) => ` ${ctx.dataset.label}: ${fmt.int(ctx.parsed.y)}` } },
      },
      scales: {
        x: { stacked, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
        y: { stacked, beginAtZero: true, ticks: { precision: 0, callback: (v) => fmt.int(v) }, grid: { color: '#e2e8f0' } },
      },
    };
  }

  // ---------------------------------------------------------------- unmatched

  /** The page; the keys it lists (null when they could not be read). */
  async function unmatchedPage() {
    const results = h('div', null, loading());
    const outcome = h('div', { class: 'outcome' });
    render(pageHeader('Unmatched campaign keys', 'Events whose provider campaign key no campaign instance maps yet. Map a key onto an instance and its events attach, with their contacts enrolled.'), outcome, results);
    let keys;
    let instances;
    try {
      [keys, instances] = await Promise.all([api('/unmatched'), allInstances({})]);
    } catch (error) {
      results.replaceChildren(errorNotice(error, unmatchedPage));
      return null;
    }
    const items = keys.items || [];
    if (!items.length) {
      results.replaceChildren(card(null, empty('Nothing unmatched: every stored event is attached to a campaign instance.')));
      return items;
    }
    const mappable = instances.filter((i) => i.status !== 'completed' && i.status !== 'failed');
    const total = items.reduce((sum, k) => sum + k.events, 0);
    results.replaceChildren(card(`${fmt.count(total, 'event')} under ${fmt.count(items.length, 'key')}`, table([
      { label: 'Provider', cell: (k) => providerBadge(k.provider) },
      { label: 'Campaign key', cell: (k) => (k.campaign_key === null ? h('span', { class: 'muted', text: 'none in the payload' }) : mono(String(k.campaign_key))) },
      { label: 'Events', num: true, cell: (k) => fmt.int(k.events) },
      { label: 'Deliveries', num: true, title: 'Stored deliveries that wrote them', cell: (k) => (k.campaign_key === null ? fmt.int(k.deliveries) : h('a', { href: `/console/deliveries?q=${encodeURIComponent(k.campaign_key)}`, text: fmt.int(k.deliveries), title: 'Show these deliveries' })) },
      { label: 'Events from … to', cell: (k) => h('span', null, dayEl(k.first_event_at), ' → ', dayEl(k.last_event_at), h('span', { class: 'ago', text: ` · ${fmt.ago(k.last_event_at)}` })), class: 'nowrap' },
      { label: 'Map onto an instance', cell: (k) => (k.campaign_key === null ? h('span', { class: 'muted small', text: 'no key to map' }) : mapForm(k, mappable, outcome)) },
    ], items, { className: 'table unmatched' })),
    h('p', { class: 'muted small how' }, 'Mapping adds the key to the instance\'s ', h('code', { text: 'provider_config' }),
      ' (', h('code', { text: 'lemlist_campaign_id' }), ', ', h('code', { text: 'postmark_tag' }), ' or ', h('code', { text: 'phantombuster_agent_id' }),
      '; the list form when it maps one already) with ', h('code', { text: 'PATCH /api/campaigns/instances/{id}' }),
      '. The gateway then reprocesses the deliveries that hold those events: each attaches once, its contact enrolled and the counters moved. Completed and failed instances are not offered.'));
    return items;
  }

  function mapForm(key, instances, outcome) {
    const select = h('select', { 'aria-label': `Instance for ${key.campaign_key}`, required: true },
      h('option', { value: '', text: instances.length ? 'Choose an instance…' : 'No open instance' }),
      instances.map((i) => h('option', { value: i.id, text: `${i.name} (${i.status})` })));
    const button = h('button', { type: 'submit', class: 'button', text: 'Map' });
    const form = h('form', { class: 'map-form' }, select, button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const instance = instances.find((i) => i.id === select.value);
      if (!instance) return;
      if (!form.classList.contains('confirming')) {
        form.classList.add('confirming');
        button.textContent = `Attach ${fmt.count(key.events, 'event')}`;
        button.title = `Map ${key.campaign_key} onto “${instance.name}” and attach its events`;
        button.classList.add('primary');
        return;
      }
      button.disabled = true;
      button.textContent = 'Mapping…';
      try {
        const written = await mapKey(key, instance);
        outcome.replaceChildren(mappedNotice(key, written));
        await showMapped(key, written);
      } catch (error) {
        outcome.replaceChildren(errorNotice(error));
        button.disabled = false;
        button.textContent = 'Map';
        button.classList.remove('primary');
        form.classList.remove('confirming');
      }
    });
    select.addEventListener('change', () => {
      form.classList.remove('confirming');
      button.textContent = 'Map';
      button.classList.remove('primary');
    });
    return form;
  }

  /**
   * Add the key to the instance's provider_config (PATCH merges key by key):
   * the single key when the instance has none for this provider, else its list.
   * The gateway then attaches the key's unmatched events before answering.
   */
  async function mapKey(key, instance) {
    const [, single, list] = MAPPING_KEYS.find(([p]) => p === key.provider);
    const config = instance.provider_config || {};
    const current = Array.isArray(config[list]) ? config[list] : [];
    const mapped = [config[single], ...current].filter((k) => k !== undefined && k !== null).map(String);
    if (mapped.includes(String(key.campaign_key))) {
      return api(`/campaigns/instances/${instance.id}/attach`, { method: 'POST', action: true }).then((attach) => ({ ...instance, attach }));
    }
    const change = mapped.length ? { [list]: [...current, key.campaign_key] } : { [single]: key.campaign_key };
    return api(`/campaigns/instances/${instance.id}`, { method: 'PATCH', body: { provider_config: change }, action: true });
  }

  /** The list again, with what the mapping did above it. */
  async function showMapped(key, written) {
    const items = await unmatchedPage();
    const still = (items || []).find((k) => k.provider === key.provider && k.campaign_key === key.campaign_key);
    document.querySelector('.outcome').replaceChildren(mappedNotice(key, written, still));
  }

  function mappedNotice(key, written, still) {
    const attach = written.attach || { events_attached: 0, deliveries: 0, remaining: 0 };
    const more = attach.remaining > 0
      ? h('button', { type: 'button', class: 'link-button', text: `Attach the remaining ${fmt.int(attach.remaining)}`, on: { click: async (ev) => {
        ev.target.disabled = true;
        try {
          const next = await api(`/campaigns/instances/${written.id}/attach`, { method: 'POST', action: true });
          await showMapped(key, { ...written, attach: next });
        } catch (error) {
          document.querySelector('.outcome').replaceChildren(errorNotice(error));
        }
      } } })
      : null;
    // Still listed with nothing left to attach: the gateway did not take the key as a match.
    const unmatched = still && !attach.remaining
      ? ` ${fmt.count(still.events, 'event')} with this key are still unmatched: check the instance's provider_config (this gateway may not match the list form of this key yet).`
      : null;
    return notice(attach.error || unmatched ? 'warn' : 'ok',
      h('strong', { text: `Mapped ${PROVIDER_NAMES[key.provider]} key ${key.campaign_key} onto ` }),
      h('a', { href: `/console/campaigns/${written.id}`, text: written.name }), '. ',
      `${fmt.count(attach.events_attached, 'event')} attached from ${fmt.count(attach.deliveries, 'delivery', 'deliveries')}`,
      attach.remaining ? `; ${fmt.int(attach.remaining)} still unmatched. ` : '.',
      attach.error ? ` ${attach.error}.` : null, unmatched, more);
  }


  // ---------------------------------------------------------------- router

  function render(...nodes) {
    while (charts.length) charts.pop().destroy();
    main.replaceChildren(...nodes.flat().filter(Boolean));
  }

  const ROUTES = [
    [/^\/console\/?$/, 'deliveries', deliveriesPage],
    [/^\/console\/deliveries\/?$/, 'deliveries', deliveriesPage],
    [/^\/console\/deliveries\/([0-9a-f-]{36})\/?$/i, 'deliveries', deliveryPage],
    [/^\/console\/campaigns\/?$/, 'campaigns', campaignsPage],
    [/^\/console\/campaigns\/([0-9a-f-]{36})\/?$/i, 'campaigns', performancePage],
    [/^\/console\/unmatched\/?$/, 'unmatched', unmatchedPage],
  ];

  function route() {
    for (const [pattern, section, page] of ROUTES) {
      const match = location.pathname.match(pattern);
      if (!match) continue;
      for (const link of document.querySelectorAll('.nav a')) {
        link.classList.toggle('active', link.dataset.section === section);
        if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
        else link.removeAttribute('aria-current');
      }
      const titles = { deliveries: 'Deliveries', campaigns: 'Campaigns', unmatched: 'Unmatched' };
      document.title = `${titles[section]} · Gateway console`;
      page(...match.slice(1)).catch((error) => render(errorNotice(error, route)));
      return;
    }
    render(card(null, empty('No such page.', h('a', { href: '/console', text: 'Go to the deliveries' }))));
  }

  document.getElementById('local-zone').textContent = localZone;
  document.getElementById('key-status').addEventListener('click', () => {
    if (keyStore.get()) keyStore.clear();
    else askForKey('Enter the API key to use for actions in this tab.');
  });
  showKeyStatus();
  window.addEventListener('popstate', route);
  route();
})();
