/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The bundle is committed inside the server package, which serves it at /ui/ (and the
// offline `rochallor-modeller` command serves the same files). Relative asset URLs keep it
// working under any mount path.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "../rochallor-server/src/rochallor_server/ui/static",
    emptyOutDir: true,
    // Stable file names (no content hash) keep the committed bundle's diffs readable and the
    // drift check simple; the server sends them with `Cache-Control: no-cache`.
    rollupOptions: {
      output: {
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
    chunkSizeWarningLimit: 800,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
