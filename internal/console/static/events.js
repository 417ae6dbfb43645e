// Hallmark console: the live event view. It polls the console's own feed
// every 2 s after the last event shown and appends new rows, built as
// text: nothing the feed says is parsed as markup.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  const status = document.getElementById('live-status');
  const table = document.getElementById('events');
  if (!status || !table || status.dataset.live !== 'yes' || !window.fetch) {
    return;
  }
  const body = table.tBodies[0];
  let after = status.dataset.after || '0';
  const cell = (row, text, cls) => {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) { td.className = cls; }
    return td;
  };
  const poll = async () => {
    try {
      const resp = await fetch('/console/events/feed?after=' + encodeURIComponent(after),
        { credentials: 'same-origin', headers: { 'Accept': 'application/json' } });
      if (resp.status === 401) {
        status.textContent = 'Not live: the session ended; sign in again.';
        return;
      }
      if (!resp.ok) {
        throw new Error('HTTP ' + resp.status);
      }
      const feed = await resp.json();
      for (const e of feed.events) {
        const row = body.insertRow();
        row.dataset.seq = String(e.seq);
        cell(row, String(e.seq), 'num');
        cell(row, new Date(e.time).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'));
        cell(row, e.kind);
        const td = row.insertCell();
        if (/^[0-9a-f]{64}$/.test(e.identity)) {
          const a = document.createElement('a');
          a.className = 'mono';
          a.href = '/console/devices/' + e.identity;
          a.textContent = e.identity.slice(0, 16) + '…';
          td.appendChild(a);
        }
        cell(row, e.detail || '');
      }
      after = String(feed.next);
      status.textContent = 'live';
    } catch (err) {
      status.textContent = 'Not live: ' + err.message + '; retrying.';
    }
    setTimeout(poll, 2000);
  };
  status.textContent = 'live';
  poll();
});
