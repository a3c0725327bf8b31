package broker

import (
	"fmt"

	"github.com/easel-io/easel/group"
)

// The group APIs: package group serves them and declares their versions
// (group.Versions); this file only maps each key to its Coordinator method.
func init() {
	regGroup(8, smallBody, groupAPI((*group.Coordinator).OffsetCommit))
	regGroup(9, smallBody, groupAPI((*group.Coordinator).OffsetFetch))
	regGroup(10, smallBody, groupAPI((*group.Coordinator).FindCoordinator))
	regGroup(11, groupBody, groupAPI((*group.Coordinator).JoinGroup))
	regGroup(12, smallBody, groupAPI((*group.Coordinator).Heartbeat))
	regGroup(13, smallBody, groupAPI((*group.Coordinator).LeaveGroup))
	regGroup(14, groupBody, groupAPI((*group.Coordinator).SyncGroup))
	regGroup(15, smallBody, groupAPI((*group.Coordinator).DescribeGroups))
	regGroup(16, smallBody, groupAPI((*group.Coordinator).ListGroups))
	regGroup(42, smallBody, groupAPI((*group.Coordinator).DeleteGroups))
	regGroup(47, smallBody, groupAPI((*group.Coordinator).OffsetDelete))
}

// regGroup registers a group API at the versions group.Versions gives it.
// A key package group does not declare is a programming error (TestGroupAPIs
// also checks the converse: every declared key has a handler here).
func regGroup(key int16, maxBody int, h handler) {
	v, ok := group.Versions[key]
	if !ok {
		panic(fmt.Sprintf("broker: group api key %d is not in group.Versions", key))
	}
	regKey(key, v[0], v[1], h, maxBody)
}
