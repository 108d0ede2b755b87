import { STEP_TYPE_LABELS, STEP_TYPES, type StepType } from "../shared/definition";
import { nodeSize } from "../shared/graph";
import { StepShape } from "../shared/StepNode";

export const DRAG_TYPE = "application/x-rochallor-step-type";

export function Palette({ onAdd }: { onAdd: (type: StepType) => void }) {
  return (
    <aside className="palette" aria-label="Step palette">
      <div className="panel-title">Steps</div>
      {STEP_TYPES.map((type) => {
        const size = nodeSize(type);
        const w = Math.round(size.width * (size.width > 100 ? 0.25 : 0.5));
        const h = Math.round(size.height * (size.width > 100 ? 0.45 : 0.5));
        return (
          <div
            key={type}
            className={`palette-item step-${type.toLowerCase().replace(/_/g, "-")}`}
            draggable
            data-testid={`palette-${type}`}
            title={`Drag onto the canvas (or click) to add a ${STEP_TYPE_LABELS[type].toLowerCase()}`}
            onDragStart={(event) => {
              event.dataTransfer.setData(DRAG_TYPE, type);
              event.dataTransfer.effectAllowed = "copy";
            }}
            onClick={() => onAdd(type)}
          >
            <svg width={44} height={32} className="palette-shape">
              <g transform={`translate(${(44 - w) / 2}, ${(32 - h) / 2})`}>
                <StepShape type={type} width={w} height={h} />
              </g>
            </svg>
            <span>{STEP_TYPE_LABELS[type]}</span>
          </div>
        );
      })}
    </aside>
  );
}
