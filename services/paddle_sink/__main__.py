from services.paddle_sink.main import main

main()
