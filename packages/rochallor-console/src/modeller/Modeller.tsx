import type { Route } from "../shell/router";

export function Modeller(_props: { route: Route }) {
  return <div className="modeller">Modeller</div>;
}
