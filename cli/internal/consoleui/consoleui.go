// Package consoleui holds the web page that `mu console` serves: index.html,
// app.css and the ES modules of app.js under static/, with no build step and no
// framework. The page talks only to the console's own HTTP/JSON API on the same
// origin (/api/session, /api/regions, /api/stacks, /api/escrows, /api/provider,
// /api/events, ...); the key never reaches the browser.
//
// Serve it with http.FileServerFS(sub) where sub, _ := fs.Sub(Static, "static").
package consoleui

import "embed"

// Static is the page's files, under the directory "static".
//
//go:embed static
var Static embed.FS
