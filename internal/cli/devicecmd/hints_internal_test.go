package devicecmd

import "testing"

// TestNotifyEndpoint: auto follows the credentials' endpoint, on needs
// an mqtts:// broker, off never connects, --broker overrides.
func TestNotifyEndpoint(t *testing.T) {
	for _, c := range []struct {
		mode, broker, cloud string
		want                string
		on, err             bool
	}{
		{mode: "auto", cloud: "mqtts://broker:8883", want: "mqtts://broker:8883", on: true},
		{mode: "auto", cloud: "https://iot.example", want: "https://iot.example"},
		{mode: "auto", cloud: ""},
		{mode: "auto", broker: "mqtts://other:8883", cloud: "https://iot.example", want: "mqtts://other:8883", on: true},
		{mode: "on", cloud: "mqtts://broker:8883", want: "mqtts://broker:8883", on: true},
		{mode: "on", cloud: "https://iot.example", err: true},
		{mode: "off", cloud: "mqtts://broker:8883"},
		{mode: "sometimes", err: true},
	} {
		got, on, err := notifyEndpoint(c.mode, c.broker, c.cloud)
		if (err != nil) != c.err || on != c.on || (on && got != c.want) {
			t.Errorf("%+v: got %q, %v, %v", c, got, on, err)
		}
	}
}
