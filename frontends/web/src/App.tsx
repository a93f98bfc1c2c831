import { useCallback, useState } from "react";
import { getKey, setKey } from "./api";
import { useRoute, useTheme } from "./hooks";
import { Login } from "./Login";
import { DashboardList } from "./DashboardList";
import { DashboardPage } from "./DashboardPage";
import { AlertsPage } from "./AlertsPage";
import { RulesPage } from "./RulesPage";

export function App() {
  const [key, setKeyState] = useState(getKey());
  const [theme, setTheme] = useTheme();
  const route = useRoute();
  const logout = useCallback(() => {
    setKey("");
    setKeyState("");
  }, []);
  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href="#/">
          Argus
        </a>
        {key !== "" && (
          <nav className="nav">
            <a href="#/" className={route.page === "list" || route.page === "dashboard" ? "on" : ""}>
              Dashboards
            </a>
            <a href="#/alerts" className={route.page === "alerts" ? "on" : ""}>
              Alerts
            </a>
            <a href="#/rules" className={route.page === "rules" ? "on" : ""}>
              Rules
            </a>
          </nav>
        )}
        <span className="spacer" />
        <button className="ghost" onClick={() => setTheme(theme === "dark" ? "light" : "dark")} title="Toggle theme">
          {theme === "dark" ? "☀ Light" : "☾ Dark"}
        </button>
        {key !== "" && (
          <button className="ghost" onClick={logout}>
            Log out
          </button>
        )}
      </header>
      {key === "" ? (
        <Login onLogin={(k) => setKeyState(k)} />
      ) : route.page === "dashboard" ? (
        <DashboardPage key={route.uid} uid={route.uid} params={route.params} onUnauthenticated={logout} />
      ) : route.page === "alerts" ? (
        <AlertsPage instance={route.uid} params={route.params} onUnauthenticated={logout} />
      ) : route.page === "rules" ? (
        <RulesPage name={route.uid} onUnauthenticated={logout} />
      ) : route.page === "new" ? (
        <DashboardPage key="new" uid="" params={route.params} onUnauthenticated={logout} />
      ) : (
        <DashboardList params={route.params} onUnauthenticated={logout} />
      )}
    </div>
  );
}
