import type { WorkflowDefinition } from "../shared/definition";
import type { LocatedIssue } from "./issues";

export function IssueList({
  issues,
  definition,
  onSelect,
}: {
  issues: LocatedIssue[];
  definition: WorkflowDefinition;
  onSelect: (issue: LocatedIssue) => void;
}) {
  void definition;
  return (
    <div className="issues" data-testid="issues">
      <div className="panel-title">
        Problems <span className="count">{issues.length}</span>
      </div>
      {issues.length === 0 ? <div className="empty">No problems: the engine would accept this definition.</div> : null}
      <ul>
        {issues.map((issue, n) => (
          <li
            key={`${issue.code}-${issue.path}-${n}`}
            className={`issue issue-${issue.severity === "warning" ? "warning" : "error"}`}
            data-testid="issue"
            data-code={issue.code}
            data-step-id={issue.location.stepId ?? ""}
            onClick={() => onSelect(issue)}
            title={issue.path}
          >
            <span className="issue-code">{issue.code}</span>
            {issue.location.stepId ? <span className="issue-step">{issue.location.stepId}</span> : null}
            <span className="issue-message">{issue.message}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}
