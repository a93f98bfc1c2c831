import { useState, type FormEvent } from "react";
import { Code, errorMessage, isCode, queries, setKey } from "./api";

// The key is checked with a cheap call before it is kept (sessionStorage: gone with the tab).
export function Login({ onLogin }: { onLogin: (key: string) => void }) {
  const [key, setKeyText] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    setKey(key.trim());
    try {
      await queries.listMetrics({}, { timeoutMs: 10_000 });
      onLogin(key.trim());
    } catch (err) {
      setKey("");
      setError(isCode(err, Code.Unauthenticated) ? "This API key is not valid." : errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="login card" onSubmit={submit}>
      <h1>Sign in to Argus</h1>
      <label>
        API key
        <input name="apikey" type="password" autoFocus value={key} onChange={(e) => setKeyText(e.target.value)} placeholder="argus api key" />
      </label>
      <p className="muted">`make run` prints a development key (in .argus/api_key); `argus keys create` makes more. It is kept in this tab only.</p>
      {error && <div className="error" role="alert">{error}</div>}
      <button type="submit" className="primary" disabled={busy || key.trim() === ""}>
        {busy ? "Checking…" : "Sign in"}
      </button>
    </form>
  );
}
