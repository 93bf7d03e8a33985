// Package web is runlog's browser UI and the JSON API behind it: a runs
// table, a run page (overview, config, summary, charts, console, alerts,
// system stats, audit), compare, and live updates of a running run.
//
// One http.Handler (New) serves the same pages over any Source, the reading
// interface this package owns: HubSource reads the hub's store (runlog hub
// --http) and LocalSource the runs under a local root, from their files or
// through the service that holds them (runlog ui). Serve runs a handler on
// its own listener and stops it, live requests included.
//
// Routes:
//
//	GET  /, /run/{id}, /compare      the pages (one embedded index.html)
//	GET  /api/runs                   the runs table: filter, sort on any
//	                                 column (summary.KEY, config.KEY), pages
//	GET  /api/runs/{id}              one run's overview
//	GET  /api/runs/{id}/chart        history of keys over a step range,
//	                                 downsampled on the server (package rollup)
//	GET  /api/runs/{id}/records      a page of records for the audit tab
//	GET  /api/runs/{id}/verify       checksums, gaps and decode of every record
//	GET  /api/runs/{id}/log          console output, alerts, system stats
//	GET  /api/runs/{id}/live         server-sent events after a given seq
//	GET  /api/compare                several runs' charts and config diff
//	POST /login, /logout             the session cookie
//
// Invariants:
//
//   - No GET changes state. With Options.Token set, every page and API call
//     needs the session cookie (HttpOnly, SameSite=Strict, an HMAC of the
//     token, never the token itself) or "Authorization: Bearer TOKEN";
//     anything else is answered 401 and nothing more.
//   - Everything a run contributes (names, tags, keys, values, console
//     lines) reaches the page as text: the front end sets textContent only,
//     and pages are served under a Content-Security-Policy without inline
//     script.
//   - Chart queries never read a whole run: they are answered from tiers kept
//     at ingest (hub) or cached by seq (local root); zooming asks again for
//     the visible range at full resolution.
//   - A live page is sent only the records after the seq it already has; a
//     page that fell too far behind, or a rewound run, is told to reload.
//   - Static assets are embedded in the binary and nothing is fetched from
//     elsewhere at run time. The chart library (uPlot) is installed from the
//     npm registry at the version web/package-lock.json pins by make build;
//     a binary built without it answers its pages with 503 and says how to
//     build it.
package web
