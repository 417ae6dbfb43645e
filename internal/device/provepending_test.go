package device

import (
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ProvePending signs with the pending key, verifiable under the pending
// identity, and refuses when nothing is pending.
func TestProvePending(t *testing.T) {
	d := onboarded(t, ClassKeygen, newVendor(t, sigalg.Ed25519))
	if _, _, err := d.ProvePending("ctx", []byte("nonce")); !errors.Is(err, ErrNoMigration) {
		t.Fatalf("nothing pending: %v", err)
	}
	m, err := d.BeginMigration(sigalg.MLDSA65)
	if err != nil {
		t.Fatal(err)
	}
	id, sig, err := d.ProvePending("ctx", []byte("nonce"))
	if err != nil || id != m.Identity {
		t.Fatalf("ProvePending = %s, %v; pending %s", id, err, m.Identity)
	}
	pub, err := sigalg.ParsePublicKey(m.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.MLDSA65.Suite()
	if err := suite.Verify(pub, identity.ProofMessage("ctx", []byte("nonce"), m.Identity), sig); err != nil {
		t.Fatalf("signature: %v", err)
	}
	current, _ := d.Identity()
	if current == m.Identity {
		t.Fatal("pending identity is the current one")
	}
}
