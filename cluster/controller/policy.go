package controller

import "github.com/easel-io/easel/cluster"

// Policy returns the controller settings this node decides with, for
// callers that check a request without committing it (validate_only).
func (n *Node) Policy() cluster.Policy { return n.cfg.Policy }
