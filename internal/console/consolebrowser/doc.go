// Package consolebrowser owns the browser tests of the operators' web
// console (internal/console, docs/console.md): a real headless Chromium,
// driven over the DevTools protocol by chromedp, signs in to a real
// `hallmark serve` holding devices imported from a signed manifest, and
// does what an operator does: read the overview, find a device, suspend
// and revoke it through the confirmation, upload a manifest, sign out.
// It also does what an attacker with a read-only token or a hostile
// device name would try, and checks keyboard use and labels.
//
// The package holds tests only. They need the Debian package chromium
// (/usr/bin/chromium) and fail naming it when it is missing. With
// HALLMARK_SCREENSHOTS=DIR they save the screenshots of docs/console.md
// in DIR.
package consolebrowser
