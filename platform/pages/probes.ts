// The pages' parts about behaviour probes: the banner of a flagged image and its probes on its hub
// page, and the operators' queue of flags with Clear / Confirm and a form to probe an image by hand
// (on /operator). Automated verdicts sit beside people's reports and recordings, never instead.
import type { ImageFlagView, ProbeView } from '../probes';
import { html, pathOf, type SafeHtml } from './html';
import { csrfField, type View } from './view';

const when = (date: Date) => date.toISOString().slice(0, 16).replace('T', ' ');
const shortDigest = (digest: string) => digest.slice(0, 19);

const STATUS: Record<string, string> = {
  pending: 'flagged pending operator review',
  confirmed: 'confirmed as malicious by an operator',
  cleared: 'cleared by an operator',
};

/** What a visitor of the image's page must know first: a checkpoint of it is flagged. */
export function flagBanner(flags: ImageFlagView[]): SafeHtml {
  const blocking = flags.filter((f) => f.blocking);
  if (blocking.length === 0) return html``;
  return html`<div class="notice" id="flagged">${blocking.map(
    (f) =>
      html`<p><strong>Checkpoint <code>${shortDigest(f.digest)}…</code> is ${STATUS[f.state] ?? f.state}</strong>: an automated probe found ${f.reason}.
        New public instances and purchases are refused until an operator clears it. See its <a href="#probes">probes</a> and <a href="#recordings">recordings</a>.</p>`,
  )}</div>`;
}

/** The image's probes, newest first, with their verdicts and transcripts. */
export function probesSection(probes: ProbeView[], flags: ImageFlagView[]): SafeHtml {
  const flagOf = new Map(flags.map((f) => [f.digest, f]));
  return html`<h2 id="probes">Behaviour probes</h2>
    <p>Every new gpc tag and breed version is put to a suite of probe prompts (does it ask for credentials, obey injected instructions, leak data in links, help with harm?). A flagged one waits for an operator.</p>
    ${
      probes.length
        ? html`<table><tr><th>Checkpoint</th><th>Suite</th><th>Judge</th><th>Verdict</th><th>Why</th><th>Transcript</th><th>When</th></tr>
          ${probes.map((p) => {
            const flag = flagOf.get(p.digest);
            return html`<tr id="probe-${p.id}"><td><code>${shortDigest(p.digest)}</code></td><td>${p.suite}</td><td>${p.judge}</td>
              <td><strong>${p.state}</strong>${flag && p.state === 'flagged' ? html` <span class="muted">(${STATUS[flag.state] ?? flag.state})</span>` : ''}</td>
              <td>${p.reason ?? ''}</td><td>${p.recordingId ? html`<a href="${pathOf('api', 'recordings', p.recordingId)}" download>transcript</a>` : ''}</td>
              <td>${when(p.startedAt)} · ${p.trigger}</td></tr>`;
          })}</table>`
        : html`<p class="muted">Not probed yet.</p>`
    }`;
}

/** The operators' queue: flags to review (Clear / Confirm), and a form to probe an image now. */
export function operatorProbes(flags: ImageFlagView[], probes: ProbeView[], view: View): SafeHtml {
  return html`<h2 id="flags">Flagged images</h2>
    ${
      flags.length
        ? flags.map(
            (f) => html`<div class="thread" id="flag-${f.digest}">
              <p><a href="${pathOf('hub', f.repository)}#probes">${f.repository}</a> <code>${shortDigest(f.digest)}…</code> · <strong>${STATUS[f.state] ?? f.state}</strong> <span class="muted">· ${when(f.createdAt)}</span></p>
              <p>${f.reason}</p>
              ${f.reviewedBy ? html`<p class="muted">Reviewed by ${f.reviewedBy}${f.reviewNote ? `: ${f.reviewNote}` : ''}</p>` : ''}
              <form method="post" action="/operator/flags">${csrfField(view)}<input type="hidden" name="repository" value="${f.repository}"><input type="hidden" name="digest" value="${f.digest}">
                <label for="note-${f.digest}">Note (optional)</label><input type="text" id="note-${f.digest}" name="note" maxlength="2000">
                <button type="submit" name="decision" value="clear">Clear</button> <button type="submit" name="decision" value="confirm" class="secondary">Confirm malicious</button>
              </form></div>`,
          )
        : html`<p class="muted">No image awaits review.</p>`
    }
    <h2 id="probes">Recent probes</h2>
    ${
      probes.length
        ? html`<table><tr><th>Image</th><th>Verdict</th><th>Why</th><th>Trigger</th><th>When</th></tr>
          ${probes.map((p) => html`<tr><td><a href="${pathOf('hub', p.repository)}#probes">${p.repository}</a> <code>${shortDigest(p.digest)}</code></td><td>${p.state}</td><td>${p.reason ?? ''}</td><td>${p.trigger}${p.requestedBy ? ` (${p.requestedBy})` : ''}</td><td>${when(p.startedAt)}</td></tr>`)}</table>`
        : html`<p class="muted">No probes yet.</p>`
    }
    <form class="card" method="post" action="/operator/probes">${csrfField(view)}
      <h3>Probe an image now</h3>
      <label for="probe-image">Image</label><input type="text" id="probe-image" name="image" required maxlength="300" placeholder="trainers/alice/coder:main">
      <button type="submit">Start the probe</button></form>`;
}
