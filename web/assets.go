package web

import (
	"embed"
	"io/fs"
)

// static holds the front end. static/vendor holds the chart library, which
// "make build" installs from the npm registry (web/package.json pins it) and
// copies there; it is not in the repository.
//
//go:embed static
var static embed.FS

//go:embed static/index.html
var indexHTML []byte

func embeddedAssets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// vendorFiles are the chart library's files the page loads.
var vendorFiles = []string{"vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}

// checkAssets returns what to say instead of the page when the binary was
// built without the chart library, or "" when it is complete.
func checkAssets(assets fs.FS) string {
	for _, f := range vendorFiles {
		if _, err := fs.Stat(assets, f); err != nil {
			return "This runlog binary was built without its web UI's chart library (" + f + " is missing).\n\n" +
				"Build it with \"make build\": it installs the pinned library from the npm registry\n" +
				"(npm ci in web/) and embeds it in the binary.\n"
		}
	}
	return ""
}
