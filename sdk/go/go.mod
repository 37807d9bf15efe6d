module flk

go 1.19
