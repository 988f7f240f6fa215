package testenv

// Dashboard is what the tests read of the chart's Grafana dashboard
// (charts/slmops/files/dashboards/slmops-rollouts.json): its variables and
// each panel's queries.
type Dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}
