package testenv

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// AuditEvent is the part of a kube-apiserver audit event (audit.k8s.io/v1) that tests count.
type AuditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// Resource is the event's resource, with "/subresource" when there is one.
func (a AuditEvent) Resource() string {
	if a.ObjectRef == nil {
		return ""
	}
	if a.ObjectRef.Subresource != "" {
		return a.ObjectRef.Resource + "/" + a.ObjectRef.Subresource
	}
	return a.ObjectRef.Resource
}

// Code is the HTTP status of the answer, or 0.
func (a AuditEvent) Code() int {
	if a.ResponseStatus == nil {
		return 0
	}
	return a.ResponseStatus.Code
}

// AuditEvents reads the audit log (Options.AuditPolicy) from the start, across restarts of the
// API server. A line cut short by a kill is skipped.
func (e *Env) AuditEvents() ([]AuditEvent, error) {
	f, err := os.Open(filepath.Join(e.Dir, "audit.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []AuditEvent
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for scanner.Scan() {
		var ev AuditEvent
		if json.Unmarshal(scanner.Bytes(), &ev) == nil {
			events = append(events, ev)
		}
	}
	return events, scanner.Err()
}
