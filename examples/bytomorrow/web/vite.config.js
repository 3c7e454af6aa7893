import { defineConfig } from 'vite';

// The dashboard lives under a privacy path: nothing is served at the site's root.
export const BASE = '/coldbrewbubbletea/';

export default defineConfig({
  base: BASE,
  build: {
    // dist/ is what Slipway serves (staticDirectory = "dist"); the app sits in
    // dist/coldbrewbubbletea/, so a plain static server, with no path-prefix support,
    // answers /coldbrewbubbletea/ and its assets from the files as they are.
    outDir: 'dist' + BASE,
    emptyOutDir: true,
  },
  server: {
    // `npm run dev`: send the API calls to a locally running api (see README.md).
    proxy: {
      [BASE + 'api']: {
        target: process.env.BYTOMORROW_API || 'http://127.0.0.1:8000',
        rewrite: (path) => path.slice(BASE.length - 1),
      },
    },
  },
});
