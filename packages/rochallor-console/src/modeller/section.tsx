import type { Section } from "../shell/sections";
import { Modeller } from "./Modeller";

export const section: Section = {
  id: "modeller",
  label: "Modeller",
  order: 10,
  render: (route) => <Modeller route={route} />,
};
