package onboarding

// NewCredentials is what a device holding cert, of product p, receives:
// the certificate, iss's chain and trust bundle, the product's endpoint
// and when to renew. Another front door that issues a device certificate
// (a migration) answers with it, so devices read one shape.
func NewCredentials(cert Certificate, p Product, iss Issuer) *Credentials {
	return (&Service{cfg: Config{Issuer: iss}}).credentialsAt(cert, p, p.CloudEndpoint)
}
