package kclient

import "bytes"

// ReadResponse reads one response frame from b and splits its header, as a
// connection's reader does; it is exported to the fuzz test only.
func ReadResponse(b []byte, flexible bool, max int) (corr int32, body []byte, err error) {
	frame, err := readFrame(bytes.NewReader(b), max)
	if err != nil {
		return 0, nil, err
	}
	return parseHeader(frame, flexible)
}
