package group

// Versions lists the group APIs the Coordinator serves, by API key, with the
// lowest and highest version of each, for the broker's ApiVersions and
// dispatch. Each API file declares its own range with regKey in its init, so
// that the table, the handler and its doc comment live side by side (a test
// checks that every doc comment names the range declared here). Treat it as
// read-only.
var Versions = map[int16][2]int16{}

// regKey declares that the API key is served from version lo to hi. Called
// only from init functions.
func regKey(key, lo, hi int16) {
	if _, dup := Versions[key]; dup || lo > hi {
		panic("group: bad version registration")
	}
	Versions[key] = [2]int16{lo, hi}
}
