package sigalgtest

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Suite returns id's suite, failing t when there is none.
func Suite(t testing.TB, id sigalg.ID) sigalg.Suite {
	t.Helper()
	suite, err := id.Suite()
	if err != nil {
		t.Fatal(err)
	}
	return suite
}

// DeriveNamed derives a key of suite id from a seed named by name and n,
// so that a test's keys are the same on every run and two names never
// share one.
func DeriveNamed(t testing.TB, id sigalg.ID, name string, n int) crypto.Signer {
	t.Helper()
	seed := sha256.New()
	seed.Write([]byte(name))
	binary.Write(seed, binary.BigEndian, uint64(n))
	key, err := Suite(t, id).DeriveKey(seed.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	return key
}
