package main

import (
	"errors"
	"fmt"
	"strings"

	kp "github.com/IBM/keyprotect-go-client"
)

const keyType = "application/vnd.ibm.kms.key+json"

// problems collects what differs from Key Protect in one case.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// ok records err (if any) as a problem and says whether the call succeeded.
func (p *problems) ok(what string, err error) bool {
	if err != nil {
		p.addf("%s: %v", what, err)
		return false
	}
	return true
}

// kpError expects err to be Key Protect's error answer with this status and, when code is not
// empty, this reason code (the codes keygate shares with Key Protect: docs/errors.md).
func (p *problems) kpError(what string, err error, status int, code string) {
	if err == nil {
		p.addf("%s: succeeded, Key Protect answers %d %s", what, status, code)
		return
	}
	var e *kp.Error
	if !errors.As(err, &e) {
		p.addf("%s: %v, Key Protect answers %d %s", what, err, status, code)
		return
	}
	if e.StatusCode != status {
		p.addf("%s: HTTP %d, Key Protect answers %d (%s)", what, e.StatusCode, status, firstLine(e.BodyContent))
		return
	}
	if code == "" {
		return
	}
	if len(e.Reasons) == 0 || e.Reasons[0].Code != code {
		p.addf("%s: reasons %v, Key Protect answers %s", what, e.Reasons, code)
	}
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// keyWant is what Key Protect shows for a root key.
type keyWant struct {
	id, name, description string
	state                 int
	deleted               bool
}

// key compares a key resource with what Key Protect shows for a root key in that state.
func (p *problems) key(what string, k *kp.Key, w keyWant) {
	if k == nil {
		p.addf("%s: no key in the answer", what)
		return
	}
	if w.id != "" && k.ID != w.id {
		p.addf("%s: id %q, want %q", what, k.ID, w.id)
	}
	if k.ID == "" {
		p.addf("%s: no id", what)
	}
	if w.name != "" && k.Name != w.name {
		p.addf("%s: name %q, want %q", what, k.Name, w.name)
	}
	if k.Description != w.description {
		p.addf("%s: description %q, want %q", what, k.Description, w.description)
	}
	if k.Type != keyType {
		p.addf("%s: type %q, want %q", what, k.Type, keyType)
	}
	if k.State != w.state {
		p.addf("%s: state %d, want %d", what, k.State, w.state)
	}
	if k.Extractable {
		p.addf("%s: extractable, a root key is not", what)
	}
	if !strings.HasSuffix(k.CRN, ":key:"+k.ID) {
		p.addf("%s: crn %q does not end with :key:<id>", what, k.CRN)
	}
	if k.CreationDate == nil || k.LastUpdateDate == nil {
		p.addf("%s: creationDate or lastUpdateDate missing", what)
	}
	if k.KeyVersion == nil || k.KeyVersion.ID == "" || k.KeyVersion.CreationDate == nil {
		p.addf("%s: keyVersion {id, creationDate} missing", what)
	}
	if k.Deleted == nil || *k.Deleted != w.deleted {
		p.addf("%s: deleted %v, want %v", what, ptrText(k.Deleted), w.deleted)
	}
	if w.deleted && k.DeletionDate == nil {
		p.addf("%s: deletionDate missing on a deleted key", what)
	}
}

func ptrText[T any](v *T) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprint(*v)
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
