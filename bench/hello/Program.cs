// Native AOT hello world: the floor for an executable's start-up time (bench/, item 3).
Console.WriteLine("hello");
return 0;
