import type { Section } from "../shell/sections";
import { Definitions } from "./Definitions";
import { Instances } from "./Instances";
import { Jobs } from "./Jobs";
import "./console.css";

export const sections: Section[] = [
  { id: "definitions", label: "Definitions", order: 20, needsEngine: true, render: (route) => <Definitions route={route} /> },
  { id: "instances", label: "Instances", order: 30, needsEngine: true, render: (route) => <Instances route={route} /> },
  { id: "jobs", label: "Jobs", order: 40, needsEngine: true, render: () => <Jobs /> },
];
