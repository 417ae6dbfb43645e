package firmwarecmd

// ImageReport is what firmware inspect --json prints, for the external
// tests to decode.
type ImageReport = imageReport
