// A read-only diagram of a definition (the console shows instances on it).
import { Background, Controls, MiniMap, ReactFlow, ReactFlowProvider } from "@xyflow/react";
import { useMemo } from "react";
import type { WorkflowDefinition } from "./definition";
import { type FlowDecorations, toFlowEdges, toFlowNodes } from "./flow";
import { definitionToGraph, layoutGraph } from "./graph";
import { nodeTypes } from "./StepNode";

export interface GraphViewProps {
  definition: WorkflowDefinition;
  decorations?: FlowDecorations;
  onStepClick?: (stepId: string) => void;
  height?: number | string;
  minimap?: boolean;
}

export function GraphView({ definition, decorations, onStepClick, height = 420, minimap = false }: GraphViewProps) {
  const { nodes, edges } = useMemo(() => {
    const graph = definitionToGraph(definition);
    const positions = layoutGraph(graph);
    return { nodes: toFlowNodes(graph, positions, decorations), edges: toFlowEdges(graph, decorations) };
  }, [definition, decorations]);
  return (
    <div className="graph-view" style={{ height }}>
      <ReactFlowProvider>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={Boolean(onStepClick)}
          onNodeClick={(_, node) => onStepClick?.(node.id)}
          fitView
          proOptions={{ hideAttribution: true }}
        >
          <Background />
          <Controls showInteractive={false} />
          {minimap ? <MiniMap pannable zoomable /> : null}
        </ReactFlow>
      </ReactFlowProvider>
    </div>
  );
}
