module github.com/amsrouter/ams/pkg

go 1.26.0
