// A modal that asks before an action, runs it, and shows the server's error text if refused.
import { type ReactNode, useState } from "react";
import { errorText } from "./usePolling";

export interface ConfirmDialogProps {
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  /** Runs the action; a rejection keeps the dialog open with the error's text. */
  onConfirm: () => Promise<unknown>;
  onClose: (done: boolean) => void;
  /** Returns a message when the form is not ready (the confirm button is disabled). */
  invalid?: string | null;
}

export function ConfirmDialog({ title, children, confirmLabel, danger, onConfirm, onClose, invalid }: ConfirmDialogProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose(true);
    } catch (exc) {
      setError(errorText(exc));
      setBusy(false);
    }
  };
  return (
    <div className="modal-backdrop" role="dialog" aria-label={title} data-testid="confirm-dialog">
      <div className="modal">
        <h3>{title}</h3>
        <div className="modal-body">{children}</div>
        {invalid ? <p className="form-hint">{invalid}</p> : null}
        {error ? (
          <p className="error-text" data-testid="action-error">
            Refused: {error}
          </p>
        ) : null}
        <div className="modal-actions">
          <button onClick={() => onClose(false)} disabled={busy} data-testid="confirm-cancel">
            Close
          </button>
          <button
            className={danger ? "danger" : "primary"}
            onClick={confirm}
            disabled={busy || Boolean(invalid)}
            data-testid="confirm-ok"
          >
            {busy ? "…" : confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}
