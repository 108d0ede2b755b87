// Top-level sections of the UI. Each lives in its own folder and registers itself by exporting
// `section` from `src/<folder>/section.tsx` (found by the build, no list to edit), e.g.
// src/modeller/section.tsx, src/console/section.tsx. A folder may export `sections` (an
// array) instead, to add several navigation entries.
import type { ReactNode } from "react";
import type { Route } from "./router";

export interface Section {
  /** First segment of the hash route: `#/<id>/...`. */
  id: string;
  /** Text of the navigation entry. */
  label: string;
  /** Navigation order (smaller first). Modeller 10; Definitions 20, Instances 30, Jobs 40. */
  order: number;
  /** Whether the section needs a running engine (hidden in the offline modeller). */
  needsEngine?: boolean;
  render: (route: Route) => ReactNode;
}

interface SectionModule {
  section?: Section;
  sections?: Section[];
}

export function collectSections(modules: Record<string, SectionModule>): Section[] {
  const found: Section[] = [];
  for (const module of Object.values(modules)) {
    if (module.section) found.push(module.section);
    if (module.sections) found.push(...module.sections);
  }
  return found.sort((a, b) => a.order - b.order || a.label.localeCompare(b.label));
}

export const sections: Section[] = collectSections(
  import.meta.glob<SectionModule>("../*/section.tsx", { eager: true }),
);
