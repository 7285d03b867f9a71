module keygate.test/keyprotect-go

go 1.26.4

require (
	github.com/IBM/keyprotect-go-client v0.17.3
	github.com/google/uuid v1.6.0
)

require (
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-retryablehttp v0.7.8 // indirect
)
