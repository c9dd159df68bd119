// The token prompt and the confirmation of operator actions.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { setToken } from "./api";

function Modal({ title, children, onClose, id }: { title: string; children: ComponentChildren; onClose?: () => void; id: string }) {
  useEffect(() => {
    if (!onClose) return;
    const on = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    addEventListener("keydown", on);
    return () => removeEventListener("keydown", on);
  }, [onClose]);
  return (
    <div class="modal-backdrop">
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby={`${id}-title`} id={id}>
        <h2 id={`${id}-title`}>{title}</h2>
        {children}
      </div>
    </div>
  );
}

/** TokenDialog asks for the API's bearer token once; the browser keeps it for the session
 * (sessionStorage), so it is gone when the tab closes. */
export function TokenDialog({ message }: { message: string }) {
  const [v, setV] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <Modal title="Sign in to the flowwatch API" id="token-dialog">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (v.trim()) setToken(v.trim());
        }}
      >
        <p>This API needs a bearer token (the <code>--token</code> of <code>flowwatch run</code>, or <code>token</code> in the detector configuration). It is kept in this tab only, until it closes.</p>
        {message && (
          <p class="error-box" role="alert">
            {message}
          </p>
        )}
        <input ref={input} type="password" name="token" autocomplete="current-password" placeholder="bearer token" value={v} onInput={(e) => setV((e.target as HTMLInputElement).value)} />
        <div class="modal-actions">
          <button type="submit" class="btn primary" disabled={!v.trim()}>
            Sign in
          </button>
        </div>
      </form>
    </Modal>
  );
}

const operatorKey = "flowwatch.operator";

function rememberedOperator(): string {
  try {
    return localStorage.getItem(operatorKey) ?? "";
  } catch {
    return "";
  }
}

export interface ConfirmSpec {
  title: string;
  body: ComponentChildren;
  confirm: string;
  danger?: boolean;
  /** askReason: the action takes a free-text reason (cancel does). */
  askReason?: boolean;
  run: (by: string, reason: string) => Promise<unknown>;
  done: string;
}

/** ConfirmDialog confirms an operator action, asks who does it (remembered in this browser)
 * and, for a cancel, why; it shows the API's answer when the action fails. */
export function ConfirmDialog({ spec, onClose, onDone }: { spec: ConfirmSpec; onClose: () => void; onDone: (msg: string) => void }) {
  const [by, setBy] = useState(rememberedOperator);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const ok = by.trim() !== "" && (!spec.askReason || reason.trim() !== "");
  return (
    <Modal title={spec.title} onClose={busy ? undefined : onClose} id="confirm-dialog">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!ok || busy) return;
          setBusy(true);
          setError("");
          try {
            localStorage.setItem(operatorKey, by.trim());
          } catch {
            // not remembered
          }
          try {
            await spec.run(by.trim(), reason.trim());
            onDone(spec.done);
          } catch (err) {
            const status = (err as { status?: number }).status;
            const msg = err instanceof Error ? err.message : String(err);
            setError(
              status === 404 || status === 405
                ? `The API does not serve this action (${status}: ${msg}). Is the operator API on (operator_api: true, or --operator-api)?`
                : status
                  ? `The API answered ${status}: ${msg}`
                  : msg,
            );
            setBusy(false);
          }
        }}
      >
        <div class="confirm-body">{spec.body}</div>
        {spec.askReason && (
          <label class="field block">
            <span>Reason (recorded with the action)</span>
            <textarea name="reason" rows={2} value={reason} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} placeholder="e.g. customer asked to cancel; refund issued by hand" />
          </label>
        )}
        <label class="field block">
          <span>Your name (recorded as who did it)</span>
          <input name="by" value={by} onInput={(e) => setBy((e.target as HTMLInputElement).value)} placeholder="e.g. alice@ops" />
        </label>
        {error && (
          <p class="error-box" role="alert">
            {error}
          </p>
        )}
        <div class="modal-actions">
          <button type="button" class="btn ghost" onClick={onClose} disabled={busy} data-dismiss>
            Keep as is
          </button>
          <button type="submit" class={`btn ${spec.danger ? "danger" : "primary"}`} disabled={!ok || busy} data-confirm>
            {busy ? "Sending…" : spec.confirm}
          </button>
        </div>
      </form>
    </Modal>
  );
}
