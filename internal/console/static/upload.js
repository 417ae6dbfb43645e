// Hallmark console: the manifest upload with a progress bar. Without this
// script the form posts as it is and the result page shows the outcome.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('manifest-upload');
  const progress = document.getElementById('upload-progress');
  const outcome = document.getElementById('upload-outcome');
  if (!form || !progress || !outcome || !window.XMLHttpRequest || !window.DOMParser) {
    return;
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.responseType = 'text';
    progress.hidden = false;
    progress.value = 0;
    button.disabled = true;
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) {
        progress.value = Math.round((e.loaded / e.total) * 100);
      }
    });
    const done = () => { button.disabled = false; };
    xhr.addEventListener('load', () => {
      done();
      progress.value = 100;
      // The answer is the console's own page; only its outcome is taken.
      const page = new DOMParser().parseFromString(xhr.responseText, 'text/html');
      const got = page.querySelector('#import-result, #import-errors, #error');
      outcome.replaceChildren();
      if (got) {
        outcome.appendChild(document.importNode(got, true));
      } else {
        const p = document.createElement('p');
        p.className = 'error';
        p.id = 'import-errors';
        p.textContent = 'The upload failed (HTTP ' + xhr.status + ').';
        outcome.appendChild(p);
      }
    });
    xhr.addEventListener('error', () => {
      done();
      const p = document.createElement('p');
      p.className = 'error';
      p.id = 'import-errors';
      p.textContent = 'The upload failed: the connection was lost.';
      outcome.replaceChildren(p);
    });
    xhr.send(new FormData(form));
  });
});
