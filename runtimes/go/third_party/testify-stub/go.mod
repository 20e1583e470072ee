// An empty stand-in for github.com/stretchr/testify: msgpack/v5's go.mod requires it for its
// own tests only. See the replace block in ../../go.mod.
module github.com/stretchr/testify

go 1.13
